"""Pipeline stage types of the math recipe besides the loop (``math_loop`` lives in ``loop.py``).

``rm`` (train a reward model on graded groups), ``reject_sample`` (sample, grade, rank, keep
top-k correct -> SFT JSONL) and ``math_eval`` (pass@1 / maj@k / rm@k in CoT/TIR on a problems
file and/or GSM8K / MATH). Each is a typed config plus ``run(config, ctx)``; the pipeline runner
(``common/pipeline/stages.py``) resolves them by name. They call the same functions as the CLI.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.models.loading import ModelConfig
from domainspec.common.sandbox.pool import SandboxConfig
from domainspec.common.pipeline.stages import StageType
from domainspec.math.evaluation import MathEvalConfig
from domainspec.math.rejection_sampling import RejectionSamplingConfig
from domainspec.math.reward_model import RewardModelConfig
from domainspec.math.tir import TIRConfig


class RMStageConfig(Config):
    groups: str = Field(..., description="JSONL of graded groups {question, responses, labels} "
                                         "(or graded samples {question, responses, correct}).")
    init_from: str = Field(..., description="Causal-LM folder the RM starts from (usually the policy).")
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig, description="RM settings.")


class RejectSampleStageConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The sampling policy.")
    problems: str = Field(..., description="Problems JSONL (question/problem + answer; else majority vote).")
    limit: int | None = Field(None, ge=1, description="First N problems only.")
    rm: str | None = Field(None, description="Reward-model folder ranking the correct responses (None: sample order).")
    sampling: RejectionSamplingConfig = Field(default_factory=RejectionSamplingConfig, description="Sampling settings.")
    tir: TIRConfig = Field(default_factory=TIRConfig, description="TIR settings (sampling.mode: tir).")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Sandbox for TIR code.")


class MathEvalStageConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy evaluated.")
    rm: str | None = Field(None, description="Reward-model folder for rm@k (None: no rm@k).")
    problems: str | None = Field(None, description="A problems JSONL (question + answer) evaluated as 'problems'.")
    limit: int | None = Field(None, ge=1, description="First N rows of `problems`.")
    eval: MathEvalConfig = Field(default_factory=MathEvalConfig, description="Modes, k, benchmarks.")
    tir: TIRConfig = Field(default_factory=TIRConfig, description="TIR settings.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Sandbox for TIR code.")


def _run_rm(cfg: RMStageConfig, ctx: Any) -> dict:
    from domainspec.math.cli import read_groups_any
    from domainspec.math.reward_model import read_groups, train_reward_model
    res = train_reward_model(cfg.reward_model, read_groups_any(cfg.groups, read_groups), ctx.out_dir, cfg.init_from)
    return {k: v for k, v in res.items() if k != "train_result"}


def _sandbox(cfg: Any, needed: bool):
    if not needed:
        return None
    from domainspec.common.sandbox.pool import Sandbox
    return Sandbox(cfg.sandbox)


def _run_reject_sample(cfg: RejectSampleStageConfig, ctx: Any) -> dict:
    from domainspec.common.models.generation import make_backend
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.math.rejection_sampling import (grade_rows, read_problems, rejection_sample, sample_responses,
                                                    write_jsonl)
    from domainspec.math.reward_model import load_reward_model
    sandbox = _sandbox(cfg, cfg.sampling.mode == "tir")
    try:
        rows = sample_responses(make_backend("hf", cfg.model), read_problems(cfg.problems, cfg.limit), cfg.sampling,
                                sandbox, cfg.tir, progress=True)
    finally:
        if sandbox is not None:
            sandbox.close()
    graded = grade_rows(rows, MathGrader(cfg.sampling.grader_mode), cfg.sampling.majority_min_share)
    write_jsonl(graded, ctx.out_dir / "samples.jsonl")
    return rejection_sample(graded, cfg.sampling, ctx.out_dir, rm=load_reward_model(cfg.rm) if cfg.rm else None)


def _run_math_eval(cfg: MathEvalStageConfig, ctx: Any) -> dict:
    import json
    from domainspec.common.models.generation import make_backend
    from domainspec.math.evaluation import benchmark_problems, evaluate
    from domainspec.math.rejection_sampling import read_problems
    from domainspec.math.reward_model import load_reward_model
    backend = make_backend("hf", cfg.model)
    rm = load_reward_model(cfg.rm) if cfg.rm else None
    sandbox = _sandbox(cfg, "tir" in cfg.eval.modes)
    res = {}
    try:
        if cfg.problems:
            res["problems"] = evaluate(backend, read_problems(cfg.problems, cfg.limit), cfg.eval, ctx.out_dir,
                                       "problems", rm, sandbox, cfg.tir)
        for spec in cfg.eval.benchmarks:
            res[spec.name] = evaluate(backend, benchmark_problems(spec), cfg.eval, ctx.out_dir, spec.name, rm,
                                      sandbox, cfg.tir)
    finally:
        if sandbox is not None:
            sandbox.close()
    (ctx.out_dir / "metrics.json").write_text(json.dumps(res, indent=2))
    return res


RM_STAGE = StageType(name="rm", config_cls=RMStageConfig, run=_run_rm,
                     outputs={"model": "final", "eval": "rm_eval.json"}, distributed=False,
                     description="train a math reward model (listwise/pairwise) on graded groups")
REJECT_SAMPLE_STAGE = StageType(name="reject_sample", config_cls=RejectSampleStageConfig, run=_run_reject_sample,
                                outputs={"sft": "sft.jsonl", "stats": "stats.jsonl", "samples": "samples.jsonl"},
                                description="RM-guided rejection sampling into an SFT JSONL")
MATH_EVAL_STAGE = StageType(name="math_eval", config_cls=MathEvalStageConfig, run=_run_math_eval,
                            outputs={"metrics": "metrics.json"},
                            description="pass@1, maj@k, rm@k in CoT/TIR on problems and GSM8K/MATH")
