"""The Qwen2.5-Math self-improvement loop: SFT -> [sample -> grade -> train RM -> rejection-sample -> SFT] x R.

Round 0 fine-tunes the initial model on seed problems with reference solutions. Round k
(1..R) takes new problems (synthetic, ``domainspec.math.synthetic``), samples ``n`` responses
each from the policy of round k-1, grades them with the one grader, trains a reward model on
those graded groups (initialized from the same policy), keeps the top-k correct responses per
problem by RM score (``rejection_sampling``) and fine-tunes the policy on them. Every round is
evaluated on a held-out synthetic set (and GSM8K/MATH when their data is given): greedy pass@1,
maj@k and rm@k, in CoT and/or TIR mode (``evaluation``).

Layout under ``out_dir``: ``resolved_config.yaml``, ``data/`` (seed, held-out and per-round
problems), ``round_<k>/`` with ``samples.jsonl`` (graded), ``rm/`` (the RM folder in ``rm/final``
+ ``rm_eval.json``), ``rs/`` (the SFT set + per-problem stats), ``sft/`` (checkpoints, ``final`` =
the round's policy), ``eval/`` and ``round.json``. Skip and resume go through done markers
(``common/pipeline/markers.py``) keyed on the loop config and the round: one per round (written
last: the round is done) and one per step (samples, rm, rs), so a rerun skips finished rounds and
resumes inside an unfinished one from its finished steps (and the trainer's checkpoints). A folder
holding a run of another config is refused.
``summary.json`` and ``report.md`` hold the per-round table.

Source: Qwen2.5-Math technical report (Yang et al. 2024), sec. 3 (post-training).
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from domainspec.common.artifacts import content_hash, read_json, write_json
from domainspec.common.config import Config, ConfigError
from domainspec.common.models.loading import ModelConfig
from domainspec.common.pipeline import markers
from domainspec.common.pipeline.markers import Action
from domainspec.common.sandbox.pool import SandboxConfig, sandbox_if
from domainspec.common.train.loop import TrainConfig
from domainspec.math.evaluation import MathEvalConfig
from domainspec.math.rejection_sampling import RejectionSamplingConfig
from domainspec.math.reward_model import RewardModelConfig
from domainspec.math.tir import TIRConfig

log = logging.getLogger(__name__)


class ProblemSetConfig(Config):
    kinds: list[str] | None = Field(None, description="Templated problem kinds (None = all of common.data.builtin.math_problems.KINDS).")
    difficulty: int = Field(1, ge=1, description="Templated difficulty level.")
    seed_problems: int = Field(1000, ge=1, description="Problems with reference solutions for the initial SFT.")
    round_problems: int = Field(200, ge=1, description="New problems sampled in each round.")
    heldout_problems: int = Field(100, ge=1, description="Held-out evaluation problems (never trained on).")
    seed: int = Field(0, description="Seed of the problem generators.")


class SFTSettings(Config):
    seq_len: int = Field(256, ge=16, description="Packed row length in tokens.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Shared training loop settings.")


class MathLoopConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The initial policy.")
    problems: ProblemSetConfig = Field(default_factory=ProblemSetConfig, description="Synthetic problem sets.")
    initial_sft: SFTSettings = Field(default_factory=SFTSettings, description="Round 0: SFT on reference solutions.")
    rounds: int = Field(2, ge=0, description="Self-improvement rounds R.")
    rejection_sampling: RejectionSamplingConfig = Field(default_factory=RejectionSamplingConfig,
                                                        description="Per-round sampling, grading and top-k selection.")
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig, description="Per-round RM training.")
    round_sft: SFTSettings = Field(default_factory=SFTSettings, description="Per-round SFT on rejection-sampled data "
                                                                           "(continues from the previous policy).")
    rm_data: Literal["round", "all_rounds"] = Field(
        "all_rounds", description="Reward-model training groups: this round's graded samples only, or those of "
                                  "every round so far (more questions; a question sampled in several rounds is one "
                                  "group, so it is never on both sides of the held-out split).")
    eval: MathEvalConfig = Field(default_factory=MathEvalConfig, description="Per-round evaluation.")
    tir: TIRConfig = Field(default_factory=TIRConfig, description="Tool-integrated reasoning settings.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Sandbox running TIR code.")


# ---------------------------------------------------------------- helpers


def _key(cfg: MathLoopConfig, k: int, step: str | None = None) -> str:
    """What round ``k``'s done markers (``common/pipeline/markers.py``) key on: the loop config, the
    round and the step; each step's inputs follow from these and the earlier steps of the round."""
    return content_hash({"loop": cfg.content_hash(), "round": k, "step": step})


def rm_groups(graded_sets: list[list[dict]]) -> list[dict]:
    """Reward-model groups ``{"question", "responses", "labels"}`` from graded sample sets, one per question.

    A question sampled in several sets (rounds draw from one problem pool) becomes one group holding
    all its responses, so the RM's held-out split by question cannot see it on both sides.
    """
    by_q: dict[str, dict] = {}
    for rows in graded_sets:
        for r in rows:
            g = by_q.setdefault(r["question"], {"question": r["question"], "responses": [], "labels": []})
            g["responses"].extend(r["responses"])
            g["labels"].extend(r["correct"])
    return list(by_q.values())


def base_model_path(cfg: MathLoopConfig) -> str:
    """The initial policy's folder (the tiny model of ``model.tiny`` is built once and cached)."""
    if cfg.model.name_or_path != "tiny":
        return cfg.model.name_or_path
    from domainspec.common.models.loading import tiny_model_path
    return str(tiny_model_path(spec=cfg.model.tiny))


def problem_sets(cfg: MathLoopConfig, out: Path) -> dict[str, list[dict]]:
    """Held-out, seed and per-round problems, deterministic, saved under data/.

    The held-out set is drawn first and no other set shares a question with it. Seed and round
    problems may share questions with each other (one problem pool, as in Qwen2.5-Math's
    rejection sampling): small templates hold few distinct questions, and making every set
    disjoint would leave the later rounds without those kinds.
    """
    from domainspec.common.artifacts import read_jsonl_rows, write_jsonl
    from domainspec.math.synthetic import templated_problems
    data = out / "data"
    p = cfg.problems
    names = ["heldout", "seed"] + [f"round_{k}" for k in range(1, cfg.rounds + 1)]
    key = content_hash({"problems": p.to_dict(), "rounds": cfg.rounds})
    if markers.is_done(data, key).action is Action.SKIP:
        return {n: read_jsonl_rows(data / f"{n}.jsonl") for n in names}
    heldout = templated_problems(p.heldout_problems, p.seed + 1000, p.kinds, p.difficulty, prefix="heldout")
    held_q = {r["question"] for r in heldout}
    sets = {"heldout": heldout,
            "seed": templated_problems(p.seed_problems, p.seed, p.kinds, p.difficulty, exclude=held_q, prefix="seed")}
    for k in range(1, cfg.rounds + 1):
        sets[f"round_{k}"] = templated_problems(p.round_problems, p.seed + k, p.kinds, p.difficulty, exclude=held_q,
                                                prefix=f"round_{k}")
    for name, rows in sets.items():
        write_jsonl(rows, data / f"{name}.jsonl")
    markers.write_done(data, key)
    return sets


def _backend(path: str, sampling):
    """The round's policy in-process: the loop trains it, so no server holds it (backend 'openai'
    is refused here; 'hf' and 'hf-cb' load the checkpoint)."""
    from domainspec.common.models.generation import make_backend
    if sampling.backend == "openai":
        raise NotImplementedError("the math loop samples its own policy checkpoints in-process: use backend "
                                  "'hf' or 'hf-cb' (backend 'openai' serves a fixed model, e.g. reject_sample)")
    return make_backend(sampling, ModelConfig(name_or_path=path))


def _evaluate(cfg: MathLoopConfig, policy: str, rm_path: str | None, heldout: list[dict], out: Path,
              sandbox: Any) -> dict:
    from domainspec.math.evaluation import benchmark_problems, evaluate
    from domainspec.math.reward_model import load_reward_model
    backend = _backend(policy, cfg.eval.sampling)
    rm = load_reward_model(rm_path) if rm_path else None
    res = {"heldout": evaluate(backend, heldout, cfg.eval, out, "heldout", rm, sandbox, cfg.tir,
                               cfg.reward_model.max_length)}
    for spec in cfg.eval.benchmarks:
        res[spec.name] = evaluate(backend, benchmark_problems(spec), cfg.eval, out, spec.name, rm, sandbox, cfg.tir,
                                  cfg.reward_model.max_length)
    return res


# ---------------------------------------------------------------- the loop


class PhaseTimes(dict):
    """Wall seconds per phase of a round (``with times("sample"): ...``), logged and kept in round.json."""

    @contextlib.contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[phase] = round(self.get(phase, 0.0) + time.perf_counter() - start, 2)

    def line(self) -> str:
        return ", ".join(f"{k} {v:.0f} s" for k, v in self.items())



def run_round_zero(cfg: MathLoopConfig, out: Path, sets: dict, sandbox: Any) -> dict:
    from domainspec.math.rejection_sampling import sft_row
    from domainspec.math.sft import sft_on_conversations
    rdir = out / "round_0"
    start = time.perf_counter()
    base = base_model_path(cfg)
    times = PhaseTimes()
    convs = [sft_row(p["question"], p["solution"], "cot")["messages"] for p in sets["seed"]]
    with times("sft"):
        policy = sft_on_conversations(base, convs, cfg.initial_sft.train, cfg.initial_sft.seq_len, rdir / "sft")
    with times("eval"):
        ev = _evaluate(cfg, str(policy), None, sets["heldout"], rdir / "eval", sandbox)
    log.info("round 0: %s", times.line())
    return {"round": 0, "policy": str(policy), "rm": None, "eval": ev, "seconds": time.perf_counter() - start,
            "phase_seconds": dict(times), "sft_examples": len(convs)}


def run_round(k: int, cfg: MathLoopConfig, out: Path, sets: dict, prev: dict, sandbox: Any) -> dict:
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.common.artifacts import read_jsonl_rows, write_jsonl
    from domainspec.math.rejection_sampling import grade_rows, rejection_sample, sample_responses
    from domainspec.math.reward_model import informative, load_reward_model, train_reward_model
    from domainspec.math.sft import sft_on_conversations
    rdir = out / f"round_{k}"
    rdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    times = PhaseTimes()
    policy = prev["policy"]
    samples_path = rdir / "samples.jsonl"
    if markers.is_done(rdir, _key(cfg, k, "samples"), "samples").action is Action.SKIP:
        graded = read_jsonl_rows(samples_path)
    else:
        scfg = cfg.rejection_sampling.for_round(k)
        # responses.jsonl: a killed round resumes its sampling row by row (and runs data-parallel under a
        # launcher); responses of other settings (a changed config) are dropped, not mixed in
        responses = rdir / "responses.jsonl"
        if not markers.may_resume(rdir, _key(cfg, k, "samples"), "samples"):
            responses.unlink(missing_ok=True)
        markers.mark_running(rdir, _key(cfg, k, "samples"), "samples")
        with times("sample"):
            rows = sample_responses(_backend(policy, scfg.sampling), sets[f"round_{k}"], scfg, sandbox, cfg.tir,
                                    progress=True, out=responses)
        with times("grade"):
            graded = grade_rows(rows, MathGrader(cfg.rejection_sampling.grader_mode),
                                cfg.rejection_sampling.majority_min_share)
        write_jsonl(graded, samples_path.with_suffix(".tmp"))
        samples_path.with_suffix(".tmp").replace(samples_path)
        markers.write_done(rdir, _key(cfg, k, "samples"), step="samples")
    groups = rm_groups([graded] + [read_jsonl_rows(out / f"round_{j}" / "samples.jsonl") for j in range(1, k)]
                       if cfg.rm_data == "all_rounds" else [graded])
    rm_eval_path = rdir / "rm" / "rm_eval.json"
    rm_res: dict = {"path": None}
    if markers.is_done(rdir, _key(cfg, k, "rm"), "rm").action is Action.SKIP:
        rm_res = read_json(rm_eval_path)
    else:
        if any(informative(g) for g in groups):
            with times("rm"):
                rm_res = train_reward_model(cfg.reward_model, groups, rdir / "rm", init_from=policy)
        else:  # every question all right or all wrong: nothing to rank; plain rejection sampling this round
            log.warning("round %d: no question has both correct and incorrect samples; no reward model this round", k)
            write_json(rm_res, rm_eval_path)
        markers.write_done(rdir, _key(cfg, k, "rm"), step="rm")
    rs_summary_path = rdir / "rs" / "summary.json"
    if markers.is_done(rdir, _key(cfg, k, "rs"), "rs").action is Action.SKIP:
        rs_summary = read_json(rs_summary_path)
    else:
        rm = load_reward_model(rm_res["path"]) if rm_res.get("path") else None
        with times("select"):
            rs_summary = rejection_sample(graded, cfg.rejection_sampling, rdir / "rs", rm=rm,
                                          rm_max_length=cfg.reward_model.max_length,
                                          rm_batch_size=cfg.reward_model.score_batch_size)
        markers.write_done(rdir, _key(cfg, k, "rs"), step="rs")
    convs = [r["messages"] for r in read_jsonl_rows(rdir / "rs" / "sft.jsonl")]
    if convs:
        with times("sft"):
            new_policy = str(sft_on_conversations(policy, convs, cfg.round_sft.train, cfg.round_sft.seq_len,
                                                  rdir / "sft"))
    else:
        log.warning("round %d: rejection sampling kept no response (sample accuracy %.3f); the policy is unchanged "
                    "(train the initial SFT longer or sample more)", k, rs_summary["sample_accuracy"])
        new_policy = policy
    with times("eval"):
        ev = _evaluate(cfg, new_policy, rm_res.get("path"), sets["heldout"], rdir / "eval", sandbox)
    log.info("round %d: %s (phases already done in an earlier run are not timed)", k, times.line())
    return {"round": k, "policy": new_policy, "rm": rm_res.get("path"), "eval": ev, "phase_seconds": dict(times),
            "rm_heldout": {x: rm_res.get(x) for x in ("pairwise_accuracy", "num_pairs", "num_groups",
                                                      "train_questions")},
            "rejection_sampling": rs_summary, "seconds": time.perf_counter() - start}


def run_loop(cfg: MathLoopConfig, out_dir: str | Path) -> dict:
    """Run (or resume) the loop; returns the summary (also in out_dir/summary.json and report.md)."""
    out = Path(out_dir).resolve()  # round.json files hold absolute paths of policies and RMs
    out.mkdir(parents=True, exist_ok=True)
    owner = markers.read_done(out, "loop") or markers.read_running(out, "loop")
    if owner is not None and owner.hash != cfg.content_hash():
        raise ConfigError(f"{out}: holds a math loop run with a different config; use a new out_dir "
                          f"(or delete it) - finished rounds would not match the config")
    markers.mark_running(out, cfg.content_hash(), "loop")
    cfg.save_resolved(out)
    started = time.perf_counter()
    sets = problem_sets(cfg, out)
    rounds = []
    with sandbox_if("tir" in cfg.eval.modes or cfg.rejection_sampling.mode == "tir", cfg.sandbox) as sandbox:
        for k in range(cfg.rounds + 1):
            rdir = out / f"round_{k}"
            if markers.is_done(rdir, _key(cfg, k)).action is Action.SKIP:
                rounds.append(read_json(rdir / "round.json"))
                log.info("math loop: round %d already done, skipped", k)
                continue
            log.info("math loop: round %d of %d", k, cfg.rounds)
            res = run_round_zero(cfg, out, sets, sandbox) if k == 0 else run_round(k, cfg, out, sets, rounds[-1], sandbox)
            write_json(res, rdir / "round.json")
            markers.write_done(rdir, _key(cfg, k), elapsed_s=res["seconds"])  # written last: the round is done
            rounds.append(res)
    _link(out / "policy", rounds[-1]["policy"])
    _link(out / "reward_model", next((r["rm"] for r in reversed(rounds) if r.get("rm")), None))
    from domainspec.math.loop_report import summarize
    summary = summarize(cfg, rounds, time.perf_counter() - started)
    write_json(summary, out / "summary.json")
    from domainspec.math.loop_report import markdown
    (out / "report.md").write_text(markdown(summary))
    markers.write_done(out, cfg.content_hash(), step="loop", elapsed_s=time.perf_counter() - started)
    return summary


def _link(link: Path, target: str | None) -> None:
    """Stable names for the last policy / RM (stage outputs), pointing into the round folders."""
    if link.is_symlink() or link.exists():
        link.unlink()
    if target:
        link.symlink_to(Path(target))


def _run_stage(cfg: MathLoopConfig, ctx: Any) -> dict:
    summary = run_loop(cfg, ctx.out_dir)
    last = summary["rounds"][-1]
    return {"policy": last["policy"], "rm": last.get("rm"), "table": summary["table"]}


def _stage():
    from domainspec.common.pipeline.stages import StageType
    return StageType(name="math_loop", config_cls=MathLoopConfig, run=_run_stage,
                     outputs={"model": "policy", "rm": "reward_model", "summary": "summary.json",
                              "report": "report.md"},
                     description="Qwen2.5-Math self-improvement loop (SFT, RM, rejection sampling) x R")


MATH_LOOP_STAGE = _stage()
