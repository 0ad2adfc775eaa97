"""Pipeline stage types of the math recipe besides the loop (``math_loop`` lives in ``loop.py``).

``rm`` (train a reward model on graded groups), ``reject_sample`` (sample, grade, rank, keep
top-k correct -> SFT JSONL) and ``math_eval`` (pass@1 / maj@k / rm@k in CoT/TIR on a problems
file and/or GSM8K / MATH). ``rm`` and ``reject_sample`` take a ``launcher:`` (training on the one loop
across ranks; sampling data-parallel, grading and RM scoring split across ranks, rank 0 writes).
Each is a typed config plus ``run(config, ctx)``; the pipeline runner
(``common/pipeline/stages.py``) resolves them by name. ``domainspec math rm-train`` and
``reject-sample`` build the same configs and call the same functions (:func:`train_rm`, :func:`reject_sample`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.models.loading import ModelConfig
from domainspec.common.sandbox.pool import SandboxConfig, sandbox_if
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
    rejection_sampling: RejectionSamplingConfig = Field(default_factory=RejectionSamplingConfig,
                                                        description="Sampling, grading and top-k settings.")
    tir: TIRConfig = Field(default_factory=TIRConfig, description="TIR settings (rejection_sampling.mode: tir).")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Sandbox for TIR code.")


class MathEvalStageConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy evaluated.")
    rm: str | None = Field(None, description="Reward-model folder for rm@k (None: no rm@k).")
    problems: str | None = Field(None, description="A problems JSONL (question + answer) evaluated as 'problems'.")
    limit: int | None = Field(None, ge=1, description="First N rows of `problems`.")
    eval: MathEvalConfig = Field(default_factory=MathEvalConfig, description="Modes, k, benchmarks.")
    tir: TIRConfig = Field(default_factory=TIRConfig, description="TIR settings.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Sandbox for TIR code.")


def train_rm(cfg: RMStageConfig, out_dir: Path) -> dict:
    """``domainspec math rm-train`` and the ``rm`` stage."""
    from domainspec.math.reward_model import read_groups, train_reward_model
    res = train_reward_model(cfg.reward_model, read_groups(cfg.groups), out_dir, cfg.init_from)
    return {k: v for k, v in res.items() if k != "train_result"}


def reject_sample(cfg: RejectSampleStageConfig, out_dir: Path) -> dict:
    """``domainspec math reject-sample`` and the ``reject_sample`` stage: sample, grade, rank, keep top-k."""
    from domainspec.common.artifacts import write_jsonl
    from domainspec.common.models.generation import make_backend
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.math.rejection_sampling import grade_rows, read_problems, rejection_sample, sample_responses
    from domainspec.math.reward_model import load_reward_model
    from domainspec.common.pipeline import ranks
    rs = cfg.rejection_sampling
    ranks.start_ranks()
    with sandbox_if(rs.mode == "tir", cfg.sandbox) as sandbox:  # responses.jsonl: resumable, data-parallel
        rows = sample_responses(make_backend(rs.sampling, cfg.model), read_problems(cfg.problems, cfg.limit), rs,
                                sandbox, cfg.tir, progress=True, out=Path(out_dir) / "responses.jsonl")
    grader = MathGrader(rs.grader_mode)
    graded = ranks.split_map(rows, lambda part: grade_rows(part, grader, rs.majority_min_share))
    if ranks.is_rank0():
        write_jsonl(graded, Path(out_dir) / "samples.jsonl")
    return rejection_sample(graded, rs, out_dir, rm=load_reward_model(cfg.rm) if cfg.rm else None)


def math_eval(cfg: MathEvalStageConfig, out_dir: Path) -> dict:
    """The ``math_eval`` stage: pass@1 / maj@k / rm@k on a problems file and the configured benchmarks."""
    from domainspec.common.artifacts import write_json
    from domainspec.common.models.generation import make_backend
    from domainspec.math.evaluation import benchmark_problems, evaluate
    from domainspec.math.rejection_sampling import read_problems
    from domainspec.math.reward_model import load_reward_model
    backend = make_backend(cfg.eval.sampling, cfg.model)
    rm = load_reward_model(cfg.rm) if cfg.rm else None
    res = {}
    with sandbox_if("tir" in cfg.eval.modes, cfg.sandbox) as sandbox:
        if cfg.problems:
            res["problems"] = evaluate(backend, read_problems(cfg.problems, cfg.limit), cfg.eval, out_dir,
                                       "problems", rm, sandbox, cfg.tir)
        for spec in cfg.eval.benchmarks:
            res[spec.name] = evaluate(backend, benchmark_problems(spec), cfg.eval, out_dir, spec.name, rm,
                                      sandbox, cfg.tir)
    write_json(res, Path(out_dir) / "metrics.json")
    return res


def _in_stage(fn):
    """A ``run(config, ctx)`` for the pipeline runner from a ``fn(config, out_dir)`` the CLI calls too."""
    return lambda cfg, ctx: fn(cfg, ctx.out_dir)


RM_STAGE = StageType(name="rm", config_cls=RMStageConfig, run=_in_stage(train_rm),
                     outputs={"model": "final", "eval": "rm_eval.json"}, distributed=True,
                     description="train a math reward model (listwise/pairwise) on graded groups")
REJECT_SAMPLE_STAGE = StageType(name="reject_sample", config_cls=RejectSampleStageConfig, run=_in_stage(reject_sample),
                                outputs={"sft": "sft.jsonl", "stats": "stats.jsonl", "samples": "samples.jsonl"},
                                distributed=True,
                                description="RM-guided rejection sampling into an SFT JSONL")
MATH_EVAL_STAGE = StageType(name="math_eval", config_cls=MathEvalStageConfig, run=_in_stage(math_eval),
                            outputs={"metrics": "metrics.json"},
                            description="pass@1, maj@k, rm@k in CoT/TIR on problems and GSM8K/MATH")
