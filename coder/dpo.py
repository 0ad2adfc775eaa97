"""DPO from execution feedback: the Coder's preference pairs come from running the tasks' tests.

Steps (each resumable through a done marker keyed on the config and its inputs):

1. **sample + execute** - ``sampling.n`` programs per task from the starting policy, through the one
   generate -> score path (``eval/evaluate.py: evaluate_tasks``, the one sandbox): the same prompts,
   sanitizing and test programs as the held-out scoring of coder/heldout_eval.py. Tasks: generated toy
   tasks (coder/toy_tasks.py, training split), a HumanEval-format task file (``prompt``, ``test``,
   ``entry_point``) or an MBPP file (its ``train`` split by default).
2. **pairs** (:func:`build_pairs`), per task:

   * *chosen* = a program that PASSED; *rejected* = one whose status is in ``pairs.reject`` (failed,
     timeout, error by default). The margin is the test verdict itself: pass against fail; a task whose
     samples all pass or all fail gives no pair.
   * *dedup*: completions equal after collapsing whitespace count once on each side (``pairs.dedup``), so
     the same program never forms two pairs with the same partner and repeats do not outweigh variety.
   * at most ``pairs.max_pairs_per_task`` pairs, each time the unused (passing, failing) combination of the
     least-used programs (ties: sample order), so distinct programs are used before any is used twice.

3. **train** - the sigmoid DPO loss (:class:`~domainspec.common.train.rl_objectives.DPOObjective`, beta 0.1
   by default: Rafailov et al. 2023, sec. 6) against the frozen starting policy, whose completion logprobs are
   computed once before training, on the one loop (``common/train/loop.py: train``).
4. **eval** - held-out toy pass@1 (coder/heldout_eval.py) of the start and the trained model.

Layout under ``out_dir``: ``resolved_config.yaml``, ``data/tasks.jsonl``, ``samples/`` (samples.jsonl,
results.jsonl, summary.json, report.md), ``pairs.jsonl``, ``train/`` (metrics.jsonl, checkpoints,
``final/``), ``eval_start/``, ``eval/``, ``summary.json``, ``report.md``, ``final`` (link to the model).

``loss_type: ipo`` swaps the sigmoid loss for IPO's squared loss (Azar et al. 2023); ``focus: diff`` sums the
log-ratios over the tokens where a pair differs only (Focused-DPO / Target-DPO;
:func:`~domainspec.common.train.rl_objectives.focus_masks`).

Not here: a graded margin (share of tests passed), online/iterative DPO, KTO.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field, model_validator

from domainspec.common.artifacts import content_hash, read_json, read_jsonl_rows, write_json, write_jsonl
from domainspec.common.config import Config, ConfigError
from domainspec.common.models.loading import ModelConfig
from domainspec.common.models.sampling import sampling_section
from domainspec.common.pipeline import markers
from domainspec.common.pipeline.markers import Action
from domainspec.common.pipeline.stages import StageType
from domainspec.common.train.loop import TrainConfig
from domainspec.coder.heldout_eval import EvalSettings

log = logging.getLogger(__name__)

DPO_SAMPLING = sampling_section("The n programs sampled per task.", n=8, temperature=0.8, top_p=0.95,
                                max_new_tokens=96, batch_size=32)
Verdict = Literal["failed", "timeout", "error"]


def _dpo_train_defaults() -> TrainConfig:
    # DPO paper (Rafailov et al. 2023, appendix B): RMSprop at 1e-6 with 150 warmup steps; AdamW here (the one loop)
    return TrainConfig(lr=1e-6, schedule="constant", warmup_ratio=0.1, weight_decay=0.0, epochs=1.0,
                       global_batch_size=8, micro_batch_size=8, save_every=50, log_every=5, progress=False)


class DPOTasks(Config):
    source: Literal["toy", "humaneval", "mbpp"] = Field("toy", description="Generated toy tasks (training split), "
                                                       "a HumanEval-format file or an MBPP file.")
    path: str | None = Field(None, description="Task file for 'humaneval' / 'mbpp' (JSONL, or a hub name).")
    split: str | None = Field(None, description="MBPP split (default 'train': tasks 601-974).")
    num: int = Field(200, ge=1, description="Toy tasks generated, or the first N of the file.")
    seed: int = Field(0, description="Seed of the toy tasks (the held-out set uses its own, EvalSettings.toy_seed).")


class PairConfig(Config):
    reject: list[Verdict] = Field(["failed", "timeout", "error"], min_length=1,
                                  description="Test verdicts a rejected program may have.")
    dedup: bool = Field(True, description="Count completions equal after collapsing whitespace once per side.")
    max_pairs_per_task: int = Field(4, ge=1, description="Most pairs per task.")


class DPOConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The starting policy (the Coder SFT model); "
                               "also the frozen reference.")
    tasks: DPOTasks = Field(default_factory=DPOTasks, description="Where the tasks with tests come from.")
    sampling: DPO_SAMPLING
    timeout_s: float = Field(10.0, gt=0, description="Wall-clock limit per test program, seconds.")
    pairs: PairConfig = Field(default_factory=PairConfig, description="Pair-building rules.")
    beta: float = Field(0.1, gt=0, description="DPO's beta (strength of the KL to the reference); 0.1 as in "
                        "Rafailov et al. 2023, sec. 6.")
    loss_type: Literal["sigmoid", "ipo"] = Field("sigmoid", description="'sigmoid' (DPO, Rafailov et al. 2023) or "
                                                 "'ipo' (Azar et al. 2023: a squared loss toward the margin "
                                                 "1 / (2 beta), bounded for deterministic preferences).")
    nll_coef: float = Field(0.0, ge=0, description="Weight of the chosen programs' length-normalized NLL added to "
                            "the DPO loss (0 = plain DPO; 1 = Pang et al. 2024's DPO + NLL).")
    focus: Literal["completion", "diff"] = Field("completion", description="Tokens the DPO log-ratios sum over: "
                                                 "'completion' (all: Rafailov et al. 2023) or 'diff' (only where "
                                                 "the pair differs, shared token prefix and suffix left out: "
                                                 "Focused-DPO / Target-DPO); the NLL term covers all.")
    train: TrainConfig = Field(default_factory=_dpo_train_defaults, description="The one loop's settings; a row "
                               "(the unit of micro/global batch) is one pair.")
    eval: EvalSettings = Field(default_factory=lambda: EvalSettings(sampling={"max_new_tokens": 96, "batch_size": 32}),
                               description="Held-out toy (and HumanEval) scoring.")
    eval_start: bool = Field(True, description="Also score the starting model.")

    @model_validator(mode="after")
    def _check(self) -> "DPOConfig":
        if self.sampling.n < 2 or self.sampling.temperature == 0:
            raise ValueError("sampling needs n >= 2 and temperature > 0: pairs need different programs of a task")
        if self.tasks.source != "toy" and not self.tasks.path:
            raise ValueError(f"tasks.source {self.tasks.source!r} needs tasks.path")
        return self


# ---------------------------------------------------------------- pairs


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def build_pairs(samples: Sequence[dict], cfg: PairConfig) -> tuple[list[dict], dict]:
    """(chosen, rejected) pairs from executed samples ``{"task_id", "sample_index", "completion", "status"}``.

    Rules in the module docstring. Returns (pairs ``{"task_id", "chosen", "rejected"}``, counts).
    """
    by_task: dict[str, list[dict]] = {}
    for s in sorted(samples, key=lambda s: (str(s["task_id"]), int(s["sample_index"]))):
        by_task.setdefault(str(s["task_id"]), []).append(s)
    pairs, stats = [], {"tasks": len(by_task), "tasks_with_pairs": 0, "all_passed": 0, "all_failed": 0,
                        "duplicates_dropped": 0}
    for tid, rows in by_task.items():
        sides: dict[str, list[str]] = {"pass": [], "fail": []}
        seen: dict[str, set[str]] = {"pass": set(), "fail": set()}
        for r in rows:
            side = "pass" if r["status"] == "passed" else "fail" if r["status"] in cfg.reject else None
            if side is None:
                continue
            key = _norm(r["completion"])
            if cfg.dedup and key in seen[side]:
                stats["duplicates_dropped"] += 1
                continue
            seen[side].add(key)
            sides[side].append(r["completion"])
        good, bad = sides["pass"], sides["fail"]
        if not good or not bad:
            stats["all_failed" if not good else "all_passed"] += 1
            continue
        uses = [0] * (len(good) + len(bad))
        free = [(c, b) for c in range(len(good)) for b in range(len(bad))]
        for _ in range(min(cfg.max_pairs_per_task, len(free))):
            # the least-used programs first (sample order breaks ties): distinct programs before repeats
            c, b = min(free, key=lambda cb: (uses[cb[0]] + uses[len(good) + cb[1]], cb))
            free.remove((c, b))
            uses[c] += 1
            uses[len(good) + b] += 1
            pairs.append({"task_id": tid, "chosen": good[c], "rejected": bad[b]})
        stats["tasks_with_pairs"] += 1
    stats["pairs"] = len(pairs)
    return pairs, stats


# ---------------------------------------------------------------- steps


def load_tasks(cfg: DPOTasks, out: Path):
    """(benchmark object, tasks, a function task -> chat messages) for the configured source."""
    from domainspec.coder.prompts import completion_messages
    from domainspec.eval.benchmarks.humaneval import HUMANEVAL
    if cfg.source == "mbpp":
        from domainspec.eval.benchmarks.mbpp import MBPP
        tasks = MBPP.load(cfg.path, limit=cfg.num, split=cfg.split or "train")
        return MBPP, tasks, lambda t: MBPP.prompt(t, "chat")
    path = cfg.path
    if cfg.source == "toy":
        from domainspec.coder.toy_tasks import generate_tasks, write_humaneval_jsonl
        path = str(write_humaneval_jsonl(generate_tasks(cfg.num, seed=cfg.seed, split="train"),
                                         out / "data" / "tasks.jsonl"))
    tasks = HUMANEVAL.load(path, limit=cfg.num)
    return HUMANEVAL, tasks, lambda t: completion_messages(t.prompt)  # the Coder SFT request format


def sample_and_execute(cfg: DPOConfig, backend, bench, tasks, render, out: Path) -> list[dict]:
    """Samples with their test verdicts, through the one generate -> score path."""
    from domainspec.common.sandbox.pool import SandboxConfig
    from domainspec.eval.evaluate import evaluate_tasks
    from domainspec.eval.generate import prompted_completer
    complete = prompted_completer(backend, bench, "chat", render=render, progress=False)
    scored = evaluate_tasks(bench, tasks, complete, cfg.sampling, out, {"benchmark": bench.name, "set": "dpo"},
                            resume=True, sandbox_config=SandboxConfig(timeout_s=cfg.timeout_s, time_limit="fixed"))
    verdict = {(r.task_id, r.sample_index): r.status.value for r in scored.results}
    return [{**s, "status": verdict[(s["task_id"], s["sample_index"])]}
            for s in read_jsonl_rows(out / "samples.jsonl")]


def pair_rows(pairs: Sequence[dict], prompts: dict[str, str], tokenizer, reference, max_new_tokens: int,
              focus: str = "completion") -> list[dict]:
    """Tokenized pairs with the reference's summed logprobs over the tokens the DPO term counts (the
    DPOObjective's rows); ``focus="diff"`` adds ``*_dpo_mask`` (the differing span, :func:`focus_masks`)."""
    from domainspec.common.train.rl_objectives import encode_completions, focus_masks, score_logprobs
    rows = []
    for p in pairs:
        (c, r), _ = encode_completions(tokenizer, prompts[p["task_id"]], [p["chosen"], p["rejected"]],
                                       max_new_tokens, mask_overlong=False)
        row = {"chosen_ids": c["ids"], "chosen_mask": c["mask"], "rejected_ids": r["ids"],
               "rejected_mask": r["mask"], "input_ids": max(c["ids"], r["ids"], key=len)}
        if focus == "diff":
            row["chosen_dpo_mask"], row["rejected_dpo_mask"] = focus_masks(c["mask"], c["ids"], r["mask"], r["ids"])
        rows.append(row)
    pad = tokenizer.pad_token_id or 0
    flat = [{"ids": x[f"{side}_ids"], "mask": x[f"{side}_mask"]} for x in rows for side in ("chosen", "rejected")]
    lps = score_logprobs(reference, flat, pad)
    for i, row in enumerate(rows):
        for j, side in enumerate(("chosen", "rejected")):
            counted = row.get(f"{side}_dpo_mask", row[f"{side}_mask"])
            row[f"ref_{side}"] = sum(lp for lp, m in zip(lps[2 * i + j], counted) if m)
    return rows


def _evaluate(cfg: DPOConfig, model_path: str, out: Path, weights: str | None = None) -> dict:
    """Scores of ``model_path``; ``weights`` names what is in it when the path is reused (train/final)."""
    from domainspec.coder.heldout_eval import evaluate_checkpoint, toy_heldout_file
    h = content_hash([cfg.eval.to_dict(), model_path, weights])
    if (d := markers.is_done(out, h)).action is Action.SKIP:
        return d.marker.result
    toy = toy_heldout_file(cfg.eval, out) if cfg.eval.toy_tasks else None
    res = evaluate_checkpoint(cfg.model.model_copy(update={"name_or_path": model_path, "gguf_file": None}),
                              cfg.eval, out, toy_data=toy)
    markers.write_done(out, h, res)
    return res


def _pass1(res: dict | None) -> float | None:
    s = (res or {}).get("toy")
    return None if not s else s["metrics"].get("pass@1")


def run_dpo(cfg: DPOConfig, out_dir: str | Path) -> dict:
    """Run (or resume) sample -> execute -> pairs -> DPO -> eval; returns the summary."""
    from domainspec.common.models.generation import make_backend
    from domainspec.common.models.loading import load_model_and_tokenizer
    from domainspec.common.train.loop import train
    from domainspec.common.train.rl_objectives import DPOObjective
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if markers.is_done(out, cfg.content_hash(), "dpo").action is Action.SKIP:
        return read_json(out / "summary.json")
    markers.mark_running(out, cfg.content_hash(), "dpo")
    cfg.save_resolved(out)
    started = time.perf_counter()
    start_path = cfg.model.name_or_path
    if start_path == "tiny":
        from domainspec.common.models.loading import tiny_model_path
        start_path = str(tiny_model_path(spec=cfg.model.tiny))
    start_cfg = cfg.model.model_copy(update={"name_or_path": start_path})
    summary: dict[str, Any] = {"start_model": start_path}
    if cfg.eval_start:
        summary["start"] = _evaluate(cfg, start_path, out / "eval_start")
    reference, tok = load_model_and_tokenizer(start_cfg)
    bench, tasks, render = load_tasks(cfg.tasks, out)
    # the pairs depend on the model, the tasks, the sampling, the test limit and the pair rules only
    key = content_hash({"pairs": cfg.model_dump(include={"model", "tasks", "sampling", "timeout_s", "pairs"}),
                        "start": start_path})
    if (d := markers.is_done(out, key, "pairs")).action is Action.SKIP:
        pairs, stats = read_jsonl_rows(out / "pairs.jsonl"), d.marker.result
    else:
        markers.mark_running(out, key, "pairs")
        backend = make_backend("hf", model=reference, tokenizer=tok)
        samples = sample_and_execute(cfg, backend, bench, tasks, render, out / "samples")
        pairs, stats = build_pairs(samples, cfg.pairs)
        stats["sample_pass_rate"] = sum(s["status"] == "passed" for s in samples) / max(1, len(samples))
        write_jsonl(pairs, out / "pairs.jsonl")
        markers.write_done(out, key, stats, "pairs")
    log.info("dpo: %d pairs from %d of %d tasks (sample pass rate %.3f; all passed %d, all failed %d, "
             "duplicates dropped %d)", stats["pairs"], stats["tasks_with_pairs"], stats["tasks"],
             stats["sample_pass_rate"], stats["all_passed"], stats["all_failed"], stats["duplicates_dropped"])
    if not pairs:
        raise ConfigError(f"dpo: no preference pairs: every task's {cfg.sampling.n} samples all passed or all "
                          f"failed (sample pass rate {stats['sample_pass_rate']:.3f}); sample more (n) or hotter")
    # focus / loss_type enter the key only when not the default, so runs made before they existed still resume
    loss_key = {k: getattr(cfg, f) for k, f in (("focus", "focus"), ("loss", "loss_type"))
                if getattr(cfg, f) != DPOConfig.model_fields[f].default}
    train_key = content_hash({"pairs": key, "train": cfg.train.to_dict(), "beta": cfg.beta, "nll": cfg.nll_coef,
                              **loss_key})
    if (d := markers.is_done(out, train_key, "train")).action is Action.SKIP:
        trained = d.marker.result
    else:
        by_id = {t.task_id: t for t in tasks}
        prompts = {tid: reference_prompt(tok, render(by_id[tid])) for tid in {p["task_id"] for p in pairs}}
        rows = pair_rows(pairs, prompts, tok, reference, cfg.sampling.max_new_tokens, cfg.focus)
        policy, _ = load_model_and_tokenizer(start_cfg, for_training=True)
        if not markers.may_resume(out, train_key, "train"):  # checkpoints of other pairs or settings: start afresh
            shutil.rmtree(out / "train", ignore_errors=True)
        markers.mark_running(out, train_key, "train")
        objective = DPOObjective(tok.pad_token_id or 0, cfg.beta, cfg.nll_coef, cfg.loss_type)
        result = train(policy, tok, rows, objective, cfg.train, out / "train")
        trained = {"steps": result.steps, "final_loss": result.final_loss, "final": str(result.final_dir)}
        markers.write_done(out, train_key, trained, "train")
    final = trained["final"]
    summary.update({"pairs": stats, "steps": trained["steps"], "final_loss": trained["final_loss"],
                    "final_model": final})
    # train/final holds the weights of the last train settings run in this folder: key the eval on them
    summary["end"] = _evaluate(cfg, final, out / "eval", train_key)
    summary["toy_pass@1"] = {"start": _pass1(summary.get("start")), "end": _pass1(summary["end"])}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(summary, out / "summary.json")
    (out / "report.md").write_text(markdown(summary))
    tmp = out / ".final.tmp"  # the stage's `model` output, replaced atomically
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(Path(final).resolve(), target_is_directory=True)
    os.replace(tmp, out / "final")
    markers.write_done(out, cfg.content_hash(), step="dpo", elapsed_s=summary["seconds"])
    return summary


def reference_prompt(tokenizer, messages: list[dict]) -> str:
    """The prompt text generation saw (the chat template with the assistant turn opened)."""
    from domainspec.common.models.generation import render_chat
    return render_chat(tokenizer, messages)


def markdown(summary: dict) -> str:
    def f(v):
        return "-" if v is None else f"{v:.3f}"
    p, s = summary["toy_pass@1"], summary["pairs"]
    return "\n".join([
        "# DPO from execution feedback", "", f"Start: `{summary['start_model']}`", "",
        f"Pairs: {s['pairs']} from {s['tasks_with_pairs']} of {s['tasks']} tasks (sample pass rate "
        f"{s['sample_pass_rate']:.3f}; all passed {s['all_passed']}, all failed {s['all_failed']}, duplicates "
        f"dropped {s['duplicates_dropped']})", "",
        f"Held-out toy pass@1: start {f(p['start'])} -> after DPO {f(p['end'])} ({summary['steps']} steps, final "
        f"loss {f(summary['final_loss'])})", "", f"Total time: {summary['seconds']:.0f} s", ""])


def _run_stage(cfg: DPOConfig, ctx) -> dict:
    s = run_dpo(cfg, ctx.out_dir)
    return {"toy_pass@1": s["toy_pass@1"], "pairs": s["pairs"]["pairs"], "steps": s["steps"],
            "seconds": s["seconds"]}


DPO_STAGE = StageType("dpo", DPOConfig, _run_stage, outputs={"model": "final", "report": "report.md",
                                                            "summary": "summary.json"},
                      distributed=True, description="DPO on pairs judged by executing the tasks' tests")
