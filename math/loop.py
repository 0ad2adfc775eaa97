"""The Qwen2.5-Math self-improvement loop: SFT -> [sample -> grade -> train RM -> rejection-sample -> SFT] x R.

Round 0 fine-tunes the initial model on seed problems with reference solutions. Round k
(1..R) takes new problems, samples ``n`` responses each from the policy of round k-1, grades
them with the one grader (against the reference answer, or the majority answer where a problem
has none), trains a reward model on those graded groups (initialized from the same policy; or
ranks with a given RM folder, ``rm_from``), keeps the top-k correct responses per problem by RM
score (``rejection_sampling``) and fine-tunes the policy on them. Every round is evaluated on the
held-out set (and GSM8K/MATH when their data is given): greedy pass@1, maj@k and rm@k, in CoT
and/or TIR mode (``evaluation``). Seed, round and held-out problems are templated (the embedded
default) or data sources: files, hub datasets, registered benchmarks (``problem_sources``).

Under a launcher (``launcher:`` in pipelines.yaml; torchrun, deepspeed, SLURM) every rank runs the
loop: each training step on the one training loop across ranks, each sampling step data-parallel
(``eval/generate.py``: per-rank shards, merged by rank 0), grading and RM scoring split across ranks
(``common/pipeline/ranks.py``); rank 0 alone writes files and markers, so the round structure
resumes the same way after a kill of any rank.

Layout under ``out_dir``: ``resolved_config.yaml``, ``data/`` (seed, held-out and per-round
problems, ``problems_report.json``: sources and what decontamination dropped), ``round_<k>/`` with ``samples.jsonl`` (graded), ``rm/`` (the RM folder in ``rm/final``
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
from domainspec.common.pipeline import markers, ranks
from domainspec.common.pipeline.markers import Action
from domainspec.common.sandbox.pool import SandboxConfig, sandbox_if
from domainspec.common.train.loop import TrainConfig
from domainspec.math.evaluation import MathEvalConfig
from domainspec.math.problem_sources import ProblemSetConfig, ProblemSource  # noqa: F401 (config API)
from domainspec.math.rejection_sampling import RejectionSamplingConfig
from domainspec.math.reward_model import RewardModelConfig
from domainspec.math.synthetic import RoundSynthesisConfig
from domainspec.math.tir import TIRConfig

log = logging.getLogger(__name__)


class SFTSettings(Config):
    seq_len: int = Field(256, ge=16, description="Packed row length in tokens.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Shared training loop settings.")


class MathLoopConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The initial policy.")
    problems: ProblemSetConfig = Field(default_factory=ProblemSetConfig, description="Seed, round and held-out "
                                       "problem sets: templated, or data sources (math/problem_sources.py).")
    initial_sft: SFTSettings = Field(default_factory=SFTSettings, description="Round 0: SFT on reference solutions.")
    rounds: int = Field(2, ge=0, description="Self-improvement rounds R.")
    rejection_sampling: RejectionSamplingConfig = Field(default_factory=RejectionSamplingConfig,
                                                        description="Per-round sampling, grading and top-k selection.")
    reward_model: RewardModelConfig = Field(default_factory=RewardModelConfig, description="Per-round RM training "
                                            "(and the input length / batch of RM scoring).")
    rm_from: str = Field("train", description="'train': train a reward model each round on the graded samples "
                                              "(initialized from the policy); else a reward-model folder (any "
                                              "AutoModelForSequenceClassification with num_labels 1, e.g. a "
                                              "Qwen2.5-Math-RM-class model) that ranks every round instead.")
    round_sft: SFTSettings = Field(default_factory=SFTSettings, description="Per-round SFT on rejection-sampled data "
                                                                           "(continues from the previous policy).")
    rm_data: Literal["round", "all_rounds"] = Field(
        "all_rounds", description="Reward-model training groups: this round's graded samples only, or those of "
                                  "every round so far (more questions; a question sampled in several rounds is one "
                                  "group, so it is never on both sides of the held-out split).")
    synthesis: RoundSynthesisConfig | None = Field(
        None, description="Prompted synthesis each round: an instruct model (`writer`) writes `n` new problems "
                          "from the seed problems, its majority vote fixes their answers, and the kept ones join "
                          "the round's problems (math/synthetic.py); null: none.")
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
    """The initial policy's folder or GGUF file (the tiny model of ``model.tiny`` is built once and cached)."""
    if cfg.model.name_or_path != "tiny":
        if cfg.model.gguf_file:  # a folder holding a GGUF file: the file itself, which every step loads
            return str(Path(cfg.model.name_or_path) / cfg.model.gguf_file)
        return cfg.model.name_or_path
    from domainspec.common.models.loading import tiny_model_path
    return str(tiny_model_path(spec=cfg.model.tiny))


def _eval_files(cfg: MathLoopConfig) -> dict[str, str]:
    """The loop's evaluation benchmarks given as local files (decontamination reads them)."""
    return {spec.name: spec.path for spec in cfg.eval.benchmarks}


def problem_sets(cfg: MathLoopConfig, out: Path) -> tuple[dict[str, list[dict]], dict]:
    """Held-out, seed and per-round problems (``problem_sources.build_problem_sets``), deterministic, saved
    under data/ with ``problems_report.json`` (sources, counts, what decontamination dropped)."""
    from domainspec.common.artifacts import read_jsonl_rows, write_jsonl
    from domainspec.math.problem_sources import build_problem_sets, source_fingerprint
    data = out / "data"
    p = cfg.problems
    names = ["heldout", "seed"] + [f"round_{k}" for k in range(1, cfg.rounds + 1)]
    key = content_hash({"problems": p.to_dict(), "rounds": cfg.rounds, "eval_files": _eval_files(cfg),
                        "sources": [source_fingerprint(s) for s in (p.seed_source, p.round_source, p.heldout_source)
                                    if not s.templated]})
    if markers.is_done(data, key).action is Action.SKIP:
        return {n: read_jsonl_rows(data / f"{n}.jsonl") for n in names}, read_json(data / "problems_report.json")
    sets, report = build_problem_sets(p, cfg.rounds, data, _eval_files(cfg))
    for name, rows in sets.items():
        write_jsonl(rows, data / f"{name}.jsonl")
    write_json(report, data / "problems_report.json")
    markers.write_done(data, key)
    return sets, report


def check_reward_model(path: str) -> None:
    """A given RM folder must be a sequence-classification model with one label (checked before any work)."""
    from transformers import AutoConfig
    p = Path(path).expanduser()
    if not (p / "config.json").is_file():
        raise ConfigError(f"rm_from: {path}: not a model folder (no config.json); use 'train' or a reward-model folder")
    mcfg = AutoConfig.from_pretrained(p)
    arch = ", ".join(getattr(mcfg, "architectures", None) or []) or "unknown"
    if mcfg.num_labels != 1 or "ForSequenceClassification" not in arch:
        raise ConfigError(f"rm_from: {path}: expected an AutoModelForSequenceClassification with num_labels 1, "
                          f"got {arch} with {mcfg.num_labels} labels")


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
    """Metrics per set and mode (every rank samples its share; rank 0 alone scores and gets the metrics)."""
    from domainspec.math.evaluation import benchmark_problems, evaluate
    from domainspec.math.reward_model import load_reward_model
    rm = load_reward_model(rm_path) if rm_path else None
    with _backend(policy, cfg.eval.sampling) as backend:  # closing stops sampling workers before training
        res = {"heldout": evaluate(backend, heldout, cfg.eval, out, "heldout", rm, sandbox, cfg.tir,
                                   cfg.reward_model.max_length)}
        for spec in cfg.eval.benchmarks:
            res[spec.name] = evaluate(backend, benchmark_problems(spec), cfg.eval, out, spec.name, rm, sandbox,
                                      cfg.tir, cfg.reward_model.max_length)
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



def _given_rm(cfg: MathLoopConfig) -> str | None:
    return None if cfg.rm_from == "train" else str(Path(cfg.rm_from).expanduser().resolve())


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
        ev = _evaluate(cfg, str(policy), _given_rm(cfg), sets["heldout"], rdir / "eval", sandbox)
    log.info("round 0: %s", times.line())
    return {"round": 0, "policy": str(policy), "rm": _given_rm(cfg), "eval": ev,
            "seconds": time.perf_counter() - start, "phase_seconds": dict(times), "sft_examples": len(convs)}


def _synthesize(k: int, cfg: MathLoopConfig, rdir: Path, sets: dict, policy: str, times: PhaseTimes
                ) -> tuple[list[dict], dict]:
    """Round k's prompted problems (``cfg.synthesis``): written and voted on data-parallel into
    ``synthesis/requests.jsonl`` / ``votes.jsonl`` (resumable), then decontaminated by rank 0, which writes
    ``synthesis/problems.jsonl`` (kept, with their majority answer and agreement), ``dropped.jsonl`` (each
    request or question dropped, with its reason) and ``stats.json``."""
    from domainspec.common.artifacts import read_jsonl_rows, write_jsonl
    from domainspec.common.models.generation import make_backend
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.math.problem_sources import contamination_index, decontaminate_problems
    from domainspec.math.synthetic import prompted_problems
    syn = cfg.synthesis
    sdir = rdir / "synthesis"
    if markers.is_done(rdir, _key(cfg, k, "synth"), "synth").action is Action.SKIP:
        return read_jsonl_rows(sdir / "problems.jsonl"), read_json(sdir / "stats.json")
    if ranks.is_rank0():
        sdir.mkdir(parents=True, exist_ok=True)
        if not markers.may_resume(rdir, _key(cfg, k, "synth"), "synth"):  # another config's samples: start afresh
            for name in ("requests.jsonl", "votes.jsonl"):
                (sdir / name).unlink(missing_ok=True)
        markers.mark_running(rdir, _key(cfg, k, "synth"), "synth")
    ranks.barrier()
    round_cfg = syn.model_copy(update={"sampling": syn.sampling.replace(seed=syn.sampling.seed + 10 * k)})
    known = [p["question"] for name, rows in sets.items() if name != "seed" for p in rows]
    with times("synthesize"):
        if syn.writer == "policy":
            writer = _backend(policy, syn.sampling)
        else:
            writer = make_backend(syn.sampling, ModelConfig(name_or_path=str(Path(syn.writer).expanduser())))
        with writer:
            rows, stats = prompted_problems(writer, sets["seed"], round_cfg, MathGrader(cfg.rejection_sampling.grader_mode),
                                            exclude=known, out_dir=sdir, id_prefix=f"synth-r{k}", progress=True)

    def finish() -> tuple[list[dict], dict]:
        dropped = stats.pop("dropped_rows")
        kept = rows
        if cfg.problems.decontam.enabled and rows:
            index = contamination_index(cfg.problems.decontam, sets["heldout"], _eval_files(cfg))
            kept, d = decontaminate_problems(rows, index, sdir / "contaminated.jsonl")
            if d["dropped"]:
                stats["dropped"]["contaminated"] = d["dropped"]
                stats["contaminated_by"] = d["by_benchmark"]
                kept_ids = {r["id"] for r in kept}
                dropped += [{**r, "reason": "contaminated"} for r in rows if r["id"] not in kept_ids]
        stats.update(kept=len(kept), writer=syn.writer, answers="majority vote")
        write_jsonl(kept, sdir / "problems.jsonl")
        write_jsonl(dropped, sdir / "dropped.jsonl")
        write_json(stats, sdir / "stats.json")
        markers.write_done(rdir, _key(cfg, k, "synth"), step="synth")
        return kept, stats
    kept, stats = ranks.on_rank0(finish, failed=f"round {k}: synthesis")
    log.info("round %d: synthesis kept %d of %d requested problems (dropped: %s)", k, stats["kept"],
             stats["requested"], stats["dropped"] or "none")
    return kept, stats


def _sample_and_grade(k: int, cfg: MathLoopConfig, rdir: Path, problems: list[dict], policy: str, sandbox: Any,
                      times: PhaseTimes) -> list[dict]:
    """Round k's graded samples: sampled data-parallel, graded split across ranks, written by rank 0."""
    from domainspec.common.artifacts import write_jsonl
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.math.rejection_sampling import grade_rows, sample_responses
    scfg = cfg.rejection_sampling.for_round(k)
    # responses.jsonl: a killed round resumes its sampling row by row (and runs data-parallel under a
    # launcher); responses of other settings (a changed config) are dropped, not mixed in
    responses = rdir / "responses.jsonl"
    if ranks.is_rank0():
        if not markers.may_resume(rdir, _key(cfg, k, "samples"), "samples"):
            responses.unlink(missing_ok=True)
        markers.mark_running(rdir, _key(cfg, k, "samples"), "samples")
    ranks.barrier()
    with times("sample"):
        with _backend(policy, scfg.sampling) as backend:
            rows = sample_responses(backend, problems, scfg, sandbox, cfg.tir, progress=True, out=responses)
    grader = MathGrader(cfg.rejection_sampling.grader_mode)
    with times("grade"):
        graded = ranks.split_map(rows, lambda part: grade_rows(part, grader, cfg.rejection_sampling.majority_min_share))
    if ranks.is_rank0():
        samples_path = rdir / "samples.jsonl"
        write_jsonl(graded, samples_path.with_suffix(".tmp"))
        samples_path.with_suffix(".tmp").replace(samples_path)
        markers.write_done(rdir, _key(cfg, k, "samples"), step="samples")
    ranks.barrier()
    return graded


def _reward_model(k: int, cfg: MathLoopConfig, rdir: Path, groups: list[dict], policy: str,
                  times: PhaseTimes) -> dict:
    """Round k's reward model: the given one (``rm_from``), else one trained on ``groups`` (on every rank)."""
    from domainspec.math.reward_model import informative, train_reward_model
    rm_eval_path = rdir / "rm" / "rm_eval.json"
    if markers.is_done(rdir, _key(cfg, k, "rm"), "rm").action is Action.SKIP:
        return read_json(rm_eval_path)
    rm_res: dict = {"path": None}
    if _given_rm(cfg):
        rm_res = {"path": _given_rm(cfg), "source": "given"}
    elif any(informative(g) for g in groups):
        with times("rm"):
            rm_res = train_reward_model(cfg.reward_model, groups, rdir / "rm", init_from=policy)
    else:  # every question all right or all wrong: nothing to rank; plain rejection sampling this round
        log.warning("round %d: no question has both correct and incorrect samples; no reward model this round", k)
    if ranks.is_rank0():
        if rm_res.get("source") == "given" or rm_res["path"] is None:
            write_json(rm_res, rm_eval_path)
        markers.write_done(rdir, _key(cfg, k, "rm"), step="rm")
    ranks.barrier()
    return rm_res


def run_round(k: int, cfg: MathLoopConfig, out: Path, sets: dict, prev: dict, sandbox: Any) -> dict:
    from domainspec.common.artifacts import read_jsonl_rows
    from domainspec.math.rejection_sampling import rejection_sample
    from domainspec.math.reward_model import load_reward_model
    from domainspec.math.sft import sft_on_conversations
    rdir = out / f"round_{k}"
    if ranks.is_rank0():
        rdir.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
    start = time.perf_counter()
    times = PhaseTimes()
    policy = prev["policy"]
    problems, synthesis = sets[f"round_{k}"], None
    if cfg.synthesis is not None:  # before sampling: the new problems are sampled with the round's own
        new, synthesis = _synthesize(k, cfg, rdir, sets, policy, times)
        problems = problems + new
    if markers.is_done(rdir, _key(cfg, k, "samples"), "samples").action is Action.SKIP:
        graded = read_jsonl_rows(rdir / "samples.jsonl")
    else:
        graded = _sample_and_grade(k, cfg, rdir, problems, policy, sandbox, times)
    groups = rm_groups([graded] + [read_jsonl_rows(out / f"round_{j}" / "samples.jsonl") for j in range(1, k)]
                       if cfg.rm_data == "all_rounds" else [graded])
    rm_res = _reward_model(k, cfg, rdir, groups, policy, times)
    rs_summary_path = rdir / "rs" / "summary.json"
    if markers.is_done(rdir, _key(cfg, k, "rs"), "rs").action is Action.SKIP:
        rs_summary = read_json(rs_summary_path)
    else:
        rm = load_reward_model(rm_res["path"]) if rm_res.get("path") else None
        with times("select"):  # RM scoring split across ranks; rank 0 writes the SFT set
            rs_summary = rejection_sample(graded, cfg.rejection_sampling, rdir / "rs", rm=rm,
                                          rm_max_length=cfg.reward_model.max_length,
                                          rm_batch_size=cfg.reward_model.score_batch_size)
        if ranks.is_rank0():
            markers.write_done(rdir, _key(cfg, k, "rs"), step="rs")
        ranks.barrier()
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
            "rm_source": rm_res.get("source", "trained" if rm_res.get("path") else None),
            "rejection_sampling": rs_summary, "synthesis": synthesis, "seconds": time.perf_counter() - start}


def _start(cfg: MathLoopConfig, out: Path) -> tuple[dict, dict]:
    """Rank 0: refuse a folder of another config, check a given RM, build the problem sets (before any work)."""
    owner = markers.read_done(out, "loop") or markers.read_running(out, "loop")
    if owner is not None and owner.hash != cfg.content_hash():
        raise ConfigError(f"{out}: holds a math loop run with a different config; use a new out_dir "
                          f"(or delete it) - finished rounds would not match the config")
    if _given_rm(cfg):
        check_reward_model(cfg.rm_from)
    markers.mark_running(out, cfg.content_hash(), "loop")
    cfg.save_resolved(out)
    return problem_sets(cfg, out)


def run_loop(cfg: MathLoopConfig, out_dir: str | Path) -> dict:
    """Run (or resume) the loop; returns the summary (also in out_dir/summary.json and report.md).

    Under a launcher (N ranks) every rank runs this: training steps run on the one training loop across
    ranks, sampling is data-parallel, grading and RM scoring are split across ranks, and rank 0 alone
    writes files and markers (the other ranks return an empty summary)."""
    out = Path(out_dir).resolve()  # round.json files hold absolute paths of policies and RMs
    out.mkdir(parents=True, exist_ok=True)
    ranks.start_ranks()
    started = time.perf_counter()
    sets, problems_report = ranks.on_rank0(lambda: _start(cfg, out))
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
            res["problems"] = problems_report["seed" if k == 0 else "round"]
            if ranks.is_rank0():
                write_json(res, rdir / "round.json")
                markers.write_done(rdir, _key(cfg, k), elapsed_s=res["seconds"])  # written last: the round is done
            ranks.barrier()
            rounds.append(res)
    if not ranks.is_rank0():
        return {}
    _link(out / "policy", rounds[-1]["policy"])
    _link(out / "reward_model", next((r["rm"] for r in reversed(rounds) if r.get("rm")), None))
    from domainspec.math.loop_report import summarize
    summary = summarize(cfg, rounds, time.perf_counter() - started)
    summary["problems"] = problems_report
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
    if not summary:  # a rank other than 0 under a launcher
        return {}
    last = summary["rounds"][-1]
    return {"policy": last["policy"], "rm": last.get("rm"), "table": summary["table"]}


def _stage():
    from domainspec.common.pipeline.stages import StageType
    return StageType(name="math_loop", config_cls=MathLoopConfig, run=_run_stage,
                     outputs={"model": "policy", "rm": "reward_model", "summary": "summary.json",
                              "report": "report.md"}, distributed=True,
                     description="Qwen2.5-Math self-improvement loop (SFT, RM, rejection sampling) x R")


MATH_LOOP_STAGE = _stage()
