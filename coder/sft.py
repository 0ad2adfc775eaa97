"""Multi-stage Coder SFT (Qwen2.5-Coder recipe): coarse-to-fine stages on the one training loop.

Each stage: build its data mix (coder/sft_data.py; execution-filtered where a source asks),
render conversations with the chat template (loss only on assistant tokens incl.
``<|im_end|>``, domainspec.common.data.chat_data), pack with per-sample isolation, train with
``domainspec.common.train.loop.train`` + ``CausalLMObjective`` from the previous stage's
weights, then score the held-out toy set (and optionally HumanEval) with
coder/heldout_eval.py. The starting model is scored too, so every stage's gain is visible.

Layout of ``out_dir``::

    resolved_config.yaml  summary.json  report.md  eval_base/
    <i>_<stage>/  data_report.json  metrics.jsonl  checkpoints/  final/  eval/  summary.json

Resume (``common/pipeline/markers.py``): a stage whose done marker holds its hash (its config,
the exec filter's and every earlier stage's) is skipped; a stage killed mid-way resumes from
its last checkpoint (``train.save_every``); a stage whose config (or an earlier stage) changed
is wiped and re-run. A scoring is skipped while its marker holds the eval settings and model.

Under a launcher (``launcher:`` on the ``coder_sft`` stage) every rank runs the whole recipe: rank 0
builds each stage's data mix (the execution filter runs once) and shares it, every stage trains on
the one training loop across the ranks (ZeRO stage from ``train.zero_stage``), the held-out sampling
is data-parallel and rank 0 scores and writes.

Usage::

    cfg = load_coder_sft_config("coder_sft.yaml", ["stages.1.train.lr=2e-4"])
    summary = run_coder_sft(cfg, "runs/coder_sft")
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from domainspec.common.artifacts import content_hash, read_jsonl_rows
from domainspec.common.config import (Config, ConfigError, LineIndex, apply_overrides, build_config, load_yaml)
from domainspec.common.models.loading import ModelConfig
from domainspec.common.pipeline import markers, ranks
from domainspec.common.pipeline.markers import Action
from domainspec.common.pipeline.stages import StageType
from domainspec.common.train.loop import TrainConfig
from domainspec.coder.exec_filter import ExecFilterConfig
from domainspec.coder.heldout_eval import EvalSettings
from domainspec.coder.sft_data import SFTSourceConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).with_name("default_sft.yaml")
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".gz", ".txt")


def _sft_train_defaults() -> TrainConfig:
    # Qwen2.5-Coder SFT: cosine ramp to the peak over 3% warmup, then constant.
    return TrainConfig(lr=1e-5, schedule="cosine_ramp_constant", warmup_ratio=0.03, weight_decay=0.0,
                       save_every=50, epochs=1.0)


class SFTStageConfig(Config):
    name: str = Field(description="Stage name (folder name; unique within the run).")
    data: list[SFTSourceConfig] = Field(min_length=1, description="The stage's data sources and weights.")
    num_samples: int | None = Field(None, ge=1, description="Conversations in the stage's mix, drawn by weight "
                                                            "(null = every row of every source once).")
    seq_len: int = Field(1024, ge=16, description="Packed sequence length in tokens.")
    drop_longer: bool = Field(True, description="Drop conversations longer than seq_len (else truncate them).")
    seed: int = Field(0, description="Seed of the data mix.")
    train: TrainConfig = Field(default_factory=_sft_train_defaults,
                               description="Optimizer/schedule/batch of this stage (the one training loop).")

    @model_validator(mode="after")
    def _check_batch(self) -> "SFTStageConfig":
        t = self.train
        if t.global_batch_tokens is None and t.global_batch_size % t.micro_batch_size:
            raise ValueError(f"train.global_batch_size {t.global_batch_size} is not a multiple of "
                             f"train.micro_batch_size {t.micro_batch_size}")
        return self


class CoderSFTConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="Starting model (the CPT checkpoint).")
    stages: list[SFTStageConfig] = Field(min_length=1, description="SFT stages, run in order, coarse to fine.")
    exec_filter: ExecFilterConfig = Field(default_factory=ExecFilterConfig,
                                          description="Execution filter for sources with exec_filter: true.")
    eval: EvalSettings = Field(default_factory=EvalSettings, description="Held-out toy / HumanEval scoring.")
    eval_base: bool = Field(True, description="Also score the starting model, for the before/after comparison.")
    eval_every_stage: bool = Field(True, description="Score after every stage (else only after the last).")

    @field_validator("stages")
    @classmethod
    def _unique_names(cls, stages: list[SFTStageConfig]) -> list[SFTStageConfig]:
        names = [s.name for s in stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"stage names must be unique; repeated: {dup}")
        return stages


# ---------------------------------------------------------------- config loading / validation


def check_config(cfg: CoderSFTConfig, lines: LineIndex | None = None) -> None:
    """Checks pydantic cannot do (data files exist); every stage before any work. Raises ConfigError."""
    lines = lines or LineIndex()
    errors = []
    for i, stage in enumerate(cfg.stages):
        for j, src in enumerate(stage.data):
            p = src.path
            looks_local = p.endswith(_FILE_SUFFIXES) or p.startswith(("/", "./", "../", "~"))
            if not p.startswith("builtin:") and looks_local and not Path(p).expanduser().exists():
                key = ("stages", i, "data", j, "path")
                errors.append(f"{lines.where(key)}: {'.'.join(map(str, key))}: data file not found: {p}")
    if errors:
        raise ConfigError("\n".join(errors))


def load_coder_sft_config(path: str | Path | None = None, overrides: list[str] | None = None) -> CoderSFTConfig:
    """Class defaults < YAML (default: the embedded default_sft.yaml) < ``--set`` overrides; fully validated."""
    data, lines = load_yaml(path or DEFAULT_CONFIG)
    if not isinstance(data, dict):
        raise ConfigError(f"{lines.source}: expected a mapping at the top level")
    apply_overrides(data, overrides)
    cfg = build_config(CoderSFTConfig, data, lines)
    check_config(cfg, lines)
    return cfg


# ---------------------------------------------------------------- running


def _train_stage(stage: SFTStageConfig, cfg: CoderSFTConfig, model_cfg: ModelConfig, sdir: Path
                 ) -> tuple[Path, int | None]:
    from domainspec.common.data.chat_data import row_to_messages
    from domainspec.common.recipes.sft import sft_train
    from domainspec.coder.sft_data import build_stage_rows

    # the mix (and its execution filter) is built once, on rank 0; every rank trains on it
    rows, sources = ranks.on_rank0(lambda: build_stage_rows(stage.data, stage.num_samples, stage.seed,
                                                            cfg.exec_filter, report_dir=sdir))
    convs = [row_to_messages(row, where=f"stage {stage.name}: row {k}") for k, row in enumerate(rows)]
    result, report = sft_train(model_cfg, convs, stage.train, stage.seq_len, sdir, resume=True,
                               drop_longer=stage.drop_longer, name=f"stage {stage.name}")
    if ranks.is_rank0():
        (sdir / "data_report.json").write_text(json.dumps({"sources": sources, **report}, indent=2))
    if result.resumed_from:
        log.info("stage %s: resumed from step %d", stage.name, result.resumed_from)
    return result.final_dir, result.resumed_from


def _evaluate(model_cfg: ModelConfig, cfg: CoderSFTConfig, out: Path, root: Path) -> dict:
    from domainspec.coder.heldout_eval import evaluate_checkpoint, toy_heldout_file

    settings_hash = content_hash([cfg.eval.to_dict(), model_cfg.to_dict()])
    if (done := markers.is_done(out, settings_hash)).action is Action.SKIP:
        return done.marker.result  # scored earlier with the same settings
    toy = ranks.on_rank0(lambda: toy_heldout_file(cfg.eval, root)) if cfg.eval.toy_tasks else None
    result = evaluate_checkpoint(model_cfg, cfg.eval, out, toy_data=toy)  # every rank samples its share
    if ranks.is_rank0():
        markers.write_done(out, settings_hash, result)
    return result


def _metrics(result: dict | None) -> dict:
    out = {}
    for which in ("toy", "humaneval"):
        s = (result or {}).get(which)
        if s:
            out[which] = {"metrics": s["metrics"], "num_tasks": s["num_tasks"], "num_samples": s["num_samples"]}
    return out


def run_coder_sft(cfg: CoderSFTConfig, out_dir: str | Path) -> dict:
    """Run (or resume) every stage; returns and writes the run summary (see module docstring).

    Under a launcher every rank runs this: each stage trains on the one training loop across the ranks,
    the held-out sampling is data-parallel, and rank 0 alone builds the data mix and writes files."""
    check_config(cfg)
    out = Path(out_dir)
    ranks.start_ranks()
    if ranks.is_rank0():
        out.mkdir(parents=True, exist_ok=True)
        cfg.save_resolved(out)
    ranks.barrier()
    start = time.perf_counter()
    summary: dict = {"model": cfg.model.name_or_path, "stages": []}
    model_cfg = cfg.model
    if cfg.eval_base:
        summary["base"] = _metrics(_evaluate(model_cfg, cfg, out / "eval_base", out))
    chain = content_hash(cfg.model.to_dict())
    for i, stage in enumerate(cfg.stages):
        sdir = out / f"{i + 1}_{stage.name}"
        chain = content_hash([chain, stage.to_dict(), cfg.exec_filter.to_dict()])
        stage_start = time.perf_counter()
        if (done := markers.is_done(sdir, chain)).action is Action.SKIP:
            log.info("stage %d (%s): done earlier, skipped", i + 1, stage.name)
            record = done.marker.result
            if cfg.eval_every_stage or i == len(cfg.stages) - 1:  # re-scored only if eval settings changed
                stage_model = model_cfg.model_copy(update={"name_or_path": record["final"], "gguf_file": None})
                record["eval"] = _metrics(_evaluate(stage_model, cfg, sdir / "eval", out))
        else:
            if ranks.is_rank0():
                if sdir.exists() and not markers.may_resume(sdir, chain):
                    log.info("stage %d (%s): config or an earlier stage changed; starting it afresh", i + 1,
                             stage.name)
                    shutil.rmtree(sdir)
                sdir.mkdir(parents=True, exist_ok=True)
                markers.mark_running(sdir, chain)
                stage.save_resolved(sdir, "stage_config.yaml")
            ranks.barrier()
            final, resumed_from = _train_stage(stage, cfg, model_cfg, sdir)
            stage_model = model_cfg.model_copy(update={"name_or_path": str(final), "gguf_file": None})
            scores = None
            if cfg.eval_every_stage or i == len(cfg.stages) - 1:
                scores = _evaluate(stage_model, cfg, sdir / "eval", out)
            record = {"name": stage.name, "dir": str(sdir), "final": str(final)}
            if ranks.is_rank0():
                losses = [r["loss"] for r in read_jsonl_rows(sdir / "metrics.jsonl", tolerate_torn_tail=True)]
                record.update({"first_loss": losses[0] if losses else None,
                               "final_loss": losses[-1] if losses else None, "resumed_from_step": resumed_from,
                               "data": json.loads((sdir / "data_report.json").read_text()),
                               "eval": _metrics(scores), "seconds": round(time.perf_counter() - stage_start, 1)})
                (sdir / "summary.json").write_text(json.dumps(record, indent=2))
                markers.write_done(sdir, chain, record, elapsed_s=record["seconds"])
            ranks.barrier()
        summary["stages"].append(record)
        model_cfg = model_cfg.model_copy(update={"name_or_path": record["final"], "gguf_file": None})
    summary["final_model"] = model_cfg.name_or_path
    if not ranks.is_rank0():
        return summary
    link = out / "final"  # stable path of the last stage's weights (the pipeline's `model` output)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(model_cfg.name_or_path).resolve(), target_is_directory=True)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(render_report(summary))
    return summary


def render_report(summary: dict) -> str:
    def cell(ev: dict, which: str) -> str:
        s = ev.get(which)
        return "-" if not s else f"{s['metrics'].get('pass@1', float('nan')):.3f} ({s['num_samples']} samples)"

    lines = ["# Coder SFT", "", f"Start: `{summary['model']}`", "",
             "| model | toy held-out pass@1 | HumanEval pass@1 | loss first -> last |", "|---|---|---|---|"]
    if "base" in summary:
        lines.append(f"| start | {cell(summary['base'], 'toy')} | {cell(summary['base'], 'humaneval')} | |")
    for st in summary["stages"]:
        loss = "" if st["first_loss"] is None else f"{st['first_loss']:.3f} -> {st['final_loss']:.3f}"
        lines.append(f"| after {st['name']} | {cell(st['eval'], 'toy')} | {cell(st['eval'], 'humaneval')} | {loss} |")
    lines += ["", f"Total time: {summary.get('seconds', 0):.0f} s", ""]
    return "\n".join(lines)


def _run_stage(config: CoderSFTConfig, ctx) -> dict:
    summary = run_coder_sft(config, ctx.out_dir)
    if not ranks.is_rank0():
        return {}

    def row(name: str, ev: dict | None, loss=None) -> dict:
        toy = (ev or {}).get("toy") or {}
        return {"after": name, "toy pass@1": toy.get("metrics", {}).get("pass@1"),
                "toy tasks": toy.get("num_tasks"), "samples": toy.get("num_samples"), "final loss": loss}

    rows = ([row("start (CPT model)", summary["base"])] if "base" in summary else []) + [
        row(s["name"], s.get("eval"), s.get("final_loss")) for s in summary["stages"]]
    return {"held_out_toy": rows, "seconds": summary["seconds"]}


CODER_SFT_STAGE = StageType("coder_sft", CoderSFTConfig, _run_stage, outputs={"model": "final", "report": "report.md"},
                            distributed=True, description="Multi-stage Coder SFT with execution-checked data "
                                                           "and held-out scoring after each stage")
