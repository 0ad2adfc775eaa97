"""GRPO on math problems: sample a group per prompt, reward it, train the policy on group-normalized advantages.

One *iteration* (a generation batch): take ``prompts_per_iteration`` problems, sample ``sampling.n`` (= G)
responses each from the current policy through the one sampling layer (``make_backend`` +
``SamplingConfig``; the policy's generation_config plays no part), reward them with a preset of
``math/rewards.py`` (hard time limits there), drop groups whose rewards are all equal and refill the batch
from the next problems (DAPO's dynamic sampling, at most ``max_sampling_tries`` rounds), mask responses
cut at ``max_new_tokens`` (DAPO's overlong filtering), record the old policy's and the frozen reference's
token logprobs, then run ``epochs_per_batch`` x ``minibatches`` policy updates with
:class:`~domainspec.common.train.rl_objectives.GRPOObjective` through the one loop
(``common/train/loop.py: train``, called once per iteration on the same in-memory model).

Optimizer state (``carry_optimizer``, on by default): as in TRL and veRL, one AdamW runs over the whole
GRPO run. Each iteration saves one checkpoint after its last update (``iter_<k>/checkpoints``, weights +
Adam moments + step count) and the next iteration's ``train`` warm-starts from it
(``Checkpointer.load_warm_start``: a new LR schedule and data position, the same moments); once an
iteration is done, the checkpoints of the ones before it are deleted, so the disk holds one optimizer state
(for a 7B model in fp32 Adam, ~12 bytes a parameter). A killed run resumes at the first unfinished
iteration from the newest finished iteration's checkpoint. ``carry_optimizer: false`` starts the moments
afresh every generation batch (each iteration then resumes from the previous one's weights alone).

Reward health, per iteration, in ``health.jsonl``, the report and the log: reward mean/std, the share of
groups with zero reward variance, KL to the reference (k3), clip fraction, response length, overlong share,
reward timeouts. Rewards that are all zero, or all equal, for ``warn_after`` consecutive iterations raise a
loud warning (a broken verifier otherwise trains nothing while looking busy).

Layout under ``out_dir``: ``resolved_config.yaml``, ``data/`` (train + held-out problems),
``iter_<k>/`` (``samples.jsonl`` with rewards, ``rows.jsonl`` the training rows, the loop's ``metrics.jsonl``
and ``final/``, ``iter.json``), ``eval_start/`` and ``eval/`` (held-out greedy pass@1 by the one grader),
``health.jsonl``, ``summary.json``, ``report.md``, ``final`` (link to the last policy). Every iteration
leaves a done marker keyed on the config and its index: a killed run resumes at the first unfinished one.

Under a launcher (``WORLD_SIZE`` > 1) the rollouts are data parallel: each rank samples and rewards the
prompts ``rank::world`` of a round and scores the old-policy / reference logprobs of its share of the rows;
both are all-gathered in order, so every rank holds one process's batch (sampling is seeded per prompt and
sample index) and takes the same dynamic-sampling decisions; ``train`` then splits each step over the ranks.
Rank 0 writes the files and markers. The held-out evaluation still runs on every rank. Without a launcher,
``sampling.workers`` > 1 samples through a local worker pool (``common/models/worker_pool.py``) that loads
the iteration's starting weights from their folder (the previous iteration's ``final``); the groups equal
the in-process ones.

Not here: value models / PPO with a critic, colocated vLLM generation, multi-turn (TIR) rollouts.
"""
from __future__ import annotations

import logging
import random
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field, model_validator

from domainspec.common.artifacts import content_hash, read_json, read_jsonl_rows, write_json, write_jsonl
from domainspec.common.config import Config, ConfigError
from domainspec.common.models.loading import ModelConfig
from domainspec.common.models.sampling import sampling_section
from domainspec.common.pipeline import markers
from domainspec.common.pipeline.markers import Action
from domainspec.common.pipeline.ranks import is_rank0, rank_world, split_map, start_ranks, sum_over_ranks
from domainspec.common.pipeline.stages import StageType
from domainspec.common.sandbox.pool import SandboxConfig
from domainspec.common.train.loop import TrainConfig
from domainspec.common.train.rl_objectives import GRPOLossConfig
from domainspec.math.evaluation import MathEvalConfig
from domainspec.math.rewards import RewardConfig

log = logging.getLogger(__name__)

GRPO_SAMPLING = sampling_section("The group of G = n responses per prompt (temperature 1: the policy's own "
                                 "distribution, as GRPO/DAPO sample).", n=8, temperature=1.0, top_p=1.0,
                                 max_new_tokens=96, batch_size=64)


def _grpo_train_defaults() -> TrainConfig:
    return TrainConfig(lr=1e-5, schedule="constant", warmup_ratio=0.0, weight_decay=0.0, micro_batch_size=8,
                       save_every=0, log_every=1, progress=False)


class GRPOProblems(Config):
    file: str | None = Field(None, description="Training problems JSONL (question/problem + answer); None = "
                             "templated synthetic problems (math/synthetic.py) of `kinds` and `difficulty`.")
    kinds: list[str] | None = Field(None, description="Templated problem kinds (None = all).")
    difficulty: int = Field(1, ge=1, description="Templated difficulty level.")
    num: int = Field(400, ge=1, description="Training problems in the pool (templated) or first N of `file`.")
    seed: int = Field(7, description="Seed of the templated training problems and of their order.")
    heldout: int = Field(200, ge=0, description="Held-out problems evaluated before and after (0 = none).")
    heldout_seed: int = Field(1000, description="Seed of the templated held-out set; 1000 = the math loop's "
                              "held-out set for its default problems.seed 0 (math/loop.py: seed + 1000).")
    heldout_file: str | None = Field(None, description="A held-out problems JSONL instead of templated ones.")


class GRPOConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The starting policy (e.g. the math "
                               "loop's final SFT policy).")
    reference: str | None = Field(None, description="Frozen reference for the KL (None = the starting policy).")
    problems: GRPOProblems = Field(default_factory=GRPOProblems, description="Training and held-out problems.")
    sampling: GRPO_SAMPLING
    reward: RewardConfig = Field(default_factory=RewardConfig, description="The reward preset.")
    loss: GRPOLossConfig = Field(default_factory=GRPOLossConfig, description="Clipping, aggregation, std "
                                 "normalization, KL.")
    iterations: int = Field(10, ge=1, description="Generation batches (each followed by its policy updates).")
    prompts_per_iteration: int = Field(16, ge=1, description="Groups trained per generation batch.")
    epochs_per_batch: int = Field(1, ge=1, description="Passes over each generation batch (GRPO's mu; > 1 "
                                  "reuses samples, which is what the old-policy ratio and its clipping are for).")
    minibatches: int = Field(2, ge=1, description="Optimizer steps per pass over a generation batch.")
    dynamic_sampling: bool = Field(True, description="Drop groups whose rewards are all equal (no gradient) and "
                                   "refill the batch with new prompts (DAPO, Yu et al. 2025, sec. 3.2).")
    max_sampling_tries: int = Field(3, ge=1, description="Sampling rounds per iteration when refilling; "
                                    "fewer groups than asked are trained when they run out.")
    overlong_mask: bool = Field(True, description="Leave responses cut at max_new_tokens out of the loss (DAPO's "
                                "overlong filtering, sec. 3.4); they still count in the reward statistics.")
    warn_after: int = Field(3, ge=1, description="Warn loudly when the rewards of this many consecutive "
                            "iterations were all zero or all equal.")
    carry_optimizer: bool = Field(True, description="Keep AdamW's moments and step count across generation "
                                  "batches (one optimizer over the run, as TRL and veRL do); false = a fresh "
                                  "optimizer every iteration.")
    train: TrainConfig = Field(default_factory=_grpo_train_defaults, description="The one loop's settings per "
                               "generation batch (lr, clipping, micro batch). Set per batch: max_steps "
                               "(epochs_per_batch x minibatches), global_batch_size (from the batch), log_every 1, "
                               "save_every (one checkpoint after the last update with carry_optimizer, else 0: "
                               "an iteration is the unit of resume) and micro_batch_size (its largest "
                               "divisor of the step's batch).")
    eval: MathEvalConfig = Field(default_factory=lambda: MathEvalConfig(sampling={"n": 1, "max_new_tokens": 96,
                                                                                   "batch_size": 64}),
                                 description="Held-out evaluation (greedy pass@1 by the one grader).")
    eval_start: bool = Field(True, description="Also evaluate the starting policy.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Sandbox of user reward functions.")

    @model_validator(mode="after")
    def _check(self) -> "GRPOConfig":
        if self.sampling.n < 2:
            raise ValueError("sampling.n (the group size G) must be >= 2: advantages are relative to the group")
        if self.sampling.temperature == 0:
            raise ValueError("sampling.temperature 0 makes every group's responses identical (no advantage)")
        if self.sampling.backend == "openai":
            raise ValueError("GRPO samples the policy it trains in-process: use sampling.backend 'hf' or 'hf-cb'")
        return self


# ---------------------------------------------------------------- reward health


class RewardHealth:
    """Per-iteration reward statistics and the loud warning on rewards stuck at zero or one value."""

    def __init__(self, warn_after: int):
        self.warn_after, self.zero_run, self.equal_run, self.warnings = warn_after, 0, 0, []

    def update(self, step: int, groups: Sequence[Sequence[float]]) -> dict:
        flat = [r for g in groups for r in g]
        n = len(flat)
        mean = sum(flat) / n if n else float("nan")
        std = (sum((r - mean) ** 2 for r in flat) / n) ** 0.5 if n else float("nan")
        zero_var = sum(1 for g in groups if len(set(g)) <= 1) / len(groups) if groups else float("nan")
        all_zero = n > 0 and all(r == 0 for r in flat)
        all_equal = n > 0 and len(set(flat)) == 1
        self.zero_run = self.zero_run + 1 if all_zero else 0
        self.equal_run = self.equal_run + 1 if all_equal else 0
        row = {"step": step, "reward_mean": mean, "reward_std": std, "zero_variance_groups": zero_var,
               "groups": len(groups)}
        if self.zero_run >= self.warn_after or self.equal_run >= self.warn_after:
            what = "all ZERO" if self.zero_run >= self.warn_after else f"all EQUAL ({flat[0]:g})"
            msg = (f"REWARD HEALTH: rewards were {what} for {max(self.zero_run, self.equal_run)} consecutive steps "
                   f"(step {step}): no group has a gradient. Is the reward function broken (a verifier that "
                   f"never matches, a timeout that always fires) or the task out of the policy's reach?")
            log.warning("\n%s\n%s\n%s", "!" * 100, msg, "!" * 100)
            self.warnings.append(msg)
            row["warning"] = msg
        return row


# ---------------------------------------------------------------- data


def problem_sets(cfg: GRPOProblems, out: Path) -> dict[str, list[dict]]:
    """Training pool and held-out problems (deterministic; written under data/). The pool never holds a
    held-out question."""
    from domainspec.math.rejection_sampling import read_problems
    from domainspec.math.synthetic import templated_problems
    if cfg.heldout_file:
        heldout = read_problems(cfg.heldout_file, cfg.heldout or None)
    else:
        heldout = templated_problems(cfg.heldout, cfg.heldout_seed, cfg.kinds, cfg.difficulty,
                                     prefix="heldout") if cfg.heldout else []
    held_q = {p["question"] for p in heldout}
    if cfg.file:
        pool = [p for p in read_problems(cfg.file, cfg.num) if p["question"] not in held_q]
    else:
        pool = templated_problems(cfg.num, cfg.seed, cfg.kinds, cfg.difficulty, exclude=held_q, prefix="grpo")
    missing = [p["id"] for p in pool if p.get("answer") is None]
    if missing:
        raise ConfigError(f"problems: {len(missing)} training problems have no answer (first: {missing[0]}); "
                          "the rewards grade against the reference")
    if not pool:
        raise ConfigError("problems: the training pool is empty")
    random.Random(cfg.seed).shuffle(pool)
    write_jsonl(pool, out / "data" / "train.jsonl")
    write_jsonl(heldout, out / "data" / "heldout.jsonl")
    return {"train": pool, "heldout": heldout}


# ---------------------------------------------------------------- one iteration


def _sample(cfg: GRPOConfig, backend, rewards, pool: list[dict], cursor: int, k: int, health_groups: list):
    """Dynamic sampling: (kept groups, new cursor). A group: problem, completions, rewards.

    Under a launcher each rank samples and rewards the prompts ``rank::world`` of every round and the
    groups are all-gathered in prompt order (``split_map``), so every rank holds the same groups and takes
    the same refill decisions from them. Sampling is seeded per (prompt, sample index) by the sampling
    layer, so the groups equal one process's."""
    from domainspec.math.tir import build_prompt
    kept: list[dict] = []
    for t in range(cfg.max_sampling_tries):
        need = cfg.prompts_per_iteration - len(kept)
        if need <= 0:
            break
        batch = [pool[(cursor + j) % len(pool)] for j in range(need)]
        cursor += need
        params = cfg.sampling.replace(seed=cfg.sampling.seed + 1000 * k + t)

        def sample_share(share: list[dict]) -> list[dict]:
            rank, world = rank_world()
            if world > 1:
                log.info("grpo step %d round %d: rank %d samples %d of %d prompts", k, t, rank, len(share), need)
            if not share:
                return []
            prompts = [build_prompt(backend, p["question"], "cot") for p in share]
            outs = backend.generate(prompts, params)
            values = rewards([p["question"] for p in share], outs, [p["answer"] for p in share])
            return [{"id": p["id"], "question": p["question"], "answer": p["answer"], "prompt": prompt,
                     "completions": comps, "rewards": r} for p, prompt, comps, r in zip(share, prompts, outs, values)]

        for group in split_map(batch, sample_share):
            health_groups.append(group)
            if not cfg.dynamic_sampling or len(set(group["rewards"])) > 1:
                kept.append(group)
        if not cfg.dynamic_sampling:
            break
    if len(kept) < cfg.prompts_per_iteration:
        log.info("grpo step %d: %d of %d groups have unequal rewards after %d sampling rounds; training on those",
                 k, len(kept), cfg.prompts_per_iteration, cfg.max_sampling_tries)
    return kept, cursor


def _rows(cfg: GRPOConfig, groups: list[dict], tokenizer, policy, reference) -> tuple[list[dict], dict]:
    from domainspec.common.train.rl_objectives import encode_completions, group_advantages, score_logprobs
    rows, lengths, cut_count = [], [], 0
    for g in groups:
        enc, cut = encode_completions(tokenizer, g["prompt"], g["completions"], cfg.sampling.max_new_tokens,
                                      cfg.overlong_mask)
        adv = group_advantages(g["rewards"], len(g["rewards"]), cfg.loss.scale_rewards).tolist()
        for row, a in zip(enc, adv):
            rows.append({**row, "advantage": a})
        lengths += [sum(r["mask"]) if r["mask"] else 0 for r in enc]
        cut_count += sum(cut)
    if rows:
        pad = tokenizer.pad_token_id or 0
        t = cfg.sampling.temperature

        def score(share: list[dict]) -> list[tuple]:  # each rank scores its share; all gathered in row order
            return list(zip(score_logprobs(policy, share, pad, t), score_logprobs(reference, share, pad, t)))
        for r, (old, ref) in zip(rows, split_map(rows, score)):
            r["old_logp"], r["ref_logp"] = old, ref
    return rows, {"overlong": cut_count}


def _response_lengths(tokenizer, groups: list[dict]) -> float:
    n = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for g in groups for c in g["completions"]]
    return sum(n) / len(n) if n else float("nan")


def _train_config(cfg: GRPOConfig, n_rows: int, k: int, world: int = 1) -> TrainConfig:
    g = cfg.sampling.n
    groups = n_rows // g
    per_step = max(1, -(-groups // cfg.minibatches)) * g
    if per_step % world:
        raise ConfigError(f"grpo step {k}: a step's batch of {per_step} responses ({per_step // g} groups x "
                          f"sampling.n {g}) does not split over {world} ranks; make sampling.n (or "
                          f"prompts_per_iteration / minibatches) a multiple of the world size")
    import math
    # the loop needs micro-batches that fill each rank's share of the step
    micro = math.gcd(cfg.train.micro_batch_size, per_step // world)
    return cfg.train.model_copy(update={"max_steps": cfg.epochs_per_batch * cfg.minibatches, "micro_batch_size": micro,
                                        "global_batch_size": per_step, "seed": cfg.train.seed + k,
                                        "global_batch_tokens": None, "log_every": 1, "keep_last": 1,
                                        "save_every": cfg.epochs_per_batch * cfg.minibatches if cfg.carry_optimizer
                                        else 0})


def _metrics_means(path: Path) -> dict:
    rows = read_jsonl_rows(path, tolerate_torn_tail=True) if path.is_file() else []
    out = {}
    for key in ("loss", "kl", "clip_fraction", "ratio", "grad_norm"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = sum(vals) / len(vals) if vals else None
    return out


def _weights(cfg: GRPOConfig, path: str) -> ModelConfig:
    """The model config of the policy weights in the folder ``path``."""
    return cfg.model.model_copy(update={"name_or_path": path, "gguf_file": None})


def _backend(sampling, model, tokenizer, weights: ModelConfig):
    """The backend that samples ``model`` (the weights ``weights``): in-process, or with ``sampling.workers``
    > 1 a local worker pool that loads ``weights`` itself (on CPU the pool's processes are parked between
    calls and reused, so each iteration pays a reload of the weights, not a spawn)."""
    from domainspec.common.models.generation import make_backend
    if sampling.workers > 1:
        return make_backend(sampling, weights)
    return make_backend(sampling.backend, model=model, tokenizer=tokenizer)


def run_iteration(cfg: GRPOConfig, k: int, idir: Path, policy, tokenizer, reference, rewards, pool, cursor,
                  health: RewardHealth, weights: str, optimizer_from: Path | None = None) -> dict:
    """Generate -> reward -> advantages -> updates for iteration ``k`` from the policy ``policy`` (whose
    weights are the folder ``weights``; ``optimizer_from``: the checkpoints folder whose optimizer state the
    updates continue); returns its record."""
    from domainspec.common.train.loop import train
    from domainspec.common.train.rl_objectives import GRPOObjective
    start = time.perf_counter()
    idir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    policy.eval()
    all_groups: list[dict] = []
    timeouts_before = rewards.stats.timeouts
    with _backend(cfg.sampling, policy, tokenizer, _weights(cfg, weights)) as backend:
        kept, cursor = _sample(cfg, backend, rewards, pool, cursor, k, all_groups)
    gen_s = time.perf_counter() - t0
    timeouts = sum_over_ranks(rewards.stats.timeouts - timeouts_before)  # each rank rewards its share
    if is_rank0():
        write_jsonl([{k2: v for k2, v in g.items() if k2 != "prompt"} for g in all_groups], idir / "samples.jsonl")
    row = health.update(k, [g["rewards"] for g in all_groups])
    rows, info = _rows(cfg, kept, tokenizer, policy, reference)
    t1 = time.perf_counter()
    if rows:
        if is_rank0():
            write_jsonl(rows, idir / "rows.jsonl")
        objective = GRPOObjective(tokenizer.pad_token_id or 0, cfg.loss, cfg.sampling.max_new_tokens,
                                  cfg.sampling.temperature)
        train(policy, tokenizer, rows, objective, _train_config(cfg, len(rows), k, rank_world()[1]), idir,
              resume=False, warm_start=optimizer_from)
    else:
        log.warning("grpo step %d: no group with unequal rewards; no update this step", k)
    train_s = time.perf_counter() - t1
    row.update({"trained_groups": len(kept), "response_tokens": _response_lengths(tokenizer, all_groups),
                "overlong_fraction": info["overlong"] / max(1, len(rows)),
                "reward_timeouts": timeouts,
                **{m: v for m, v in _metrics_means(idir / "metrics.jsonl").items() if rows},
                "generate_s": round(gen_s, 2), "train_s": round(train_s, 2),
                "seconds": round(time.perf_counter() - start, 2), "cursor": cursor})
    log.info("grpo step %d: reward %.3f +- %.3f | zero-var groups %.2f | trained %d groups | kl %s | clip %s | "
             "len %.1f | gen %.1f s train %.1f s", k, row["reward_mean"], row["reward_std"],
             row["zero_variance_groups"], len(kept), _fmt(row.get("kl")), _fmt(row.get("clip_fraction")),
             row["response_tokens"], gen_s, train_s)
    return row


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}"


# ---------------------------------------------------------------- the run


def _key(cfg: GRPOConfig, k: int) -> str:
    return content_hash({"grpo": cfg.content_hash(), "iteration": k})


def _optimizer_state(cfg: GRPOConfig, out: Path, k: int) -> Path | None:
    """The checkpoints folder iteration ``k`` continues the optimizer of: the newest earlier iteration that
    made updates (an iteration without a group to train saves none); None = a fresh optimizer."""
    if not cfg.carry_optimizer:
        return None
    from domainspec.common.train.checkpoint import list_checkpoints
    for j in range(k - 1, -1, -1):
        if list_checkpoints(out / f"iter_{j}" / "checkpoints"):
            return out / f"iter_{j}" / "checkpoints"
    return None


def _drop_older_optimizer_states(out: Path, k: int) -> None:
    """After iteration ``k`` is done, only the newest optimizer state is kept (rank 0 deletes the others)."""
    from domainspec.common.train.checkpoint import list_checkpoints
    if not list_checkpoints(out / f"iter_{k}" / "checkpoints"):
        return  # no update this iteration: the earlier state is still the one to continue
    for j in range(k):
        shutil.rmtree(out / f"iter_{j}" / "checkpoints", ignore_errors=True)


def _evaluate(cfg: GRPOConfig, model_cfg: ModelConfig, model, tokenizer, heldout: list[dict], out: Path,
              weights: str) -> dict | None:
    """Held-out metrics of the weights ``model_cfg`` (loaded as ``model``, or None when a worker pool samples
    them; skipped while the done marker holds these settings and ``weights``)."""
    if not heldout:
        return None
    from domainspec.math.evaluation import evaluate
    h = content_hash({"eval": cfg.eval.to_dict(), "heldout": [p["question"] for p in heldout],
                      "weights": weights})
    if (d := markers.is_done(out, h)).action is Action.SKIP:
        return d.marker.result
    if model is not None:
        model.eval()
    with _backend(cfg.eval.sampling, model, tokenizer, model_cfg) as backend:
        res = evaluate(backend, heldout, cfg.eval, out, "heldout")
    markers.write_done(out, h, res)
    return res


def run_grpo(cfg: GRPOConfig, out_dir: str | Path) -> dict:
    """Run (or resume) GRPO; returns the summary (also summary.json / report.md under ``out_dir``)."""
    from domainspec.common.models.loading import load_model_and_tokenizer
    from domainspec.math.rewards import RewardRunner
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start_ranks()  # under a launcher: the process group the rollouts are gathered over
    owner = markers.read_done(out, "grpo") or markers.read_running(out, "grpo")
    if owner is not None and owner.hash != cfg.content_hash():
        raise ConfigError(f"{out}: holds a GRPO run of another config; use a new out_dir (or delete it)")
    markers.mark_running(out, cfg.content_hash(), "grpo")
    cfg.save_resolved(out)
    started = time.perf_counter()
    sets = problem_sets(cfg.problems, out)
    start_path = cfg.model.name_or_path
    if start_path == "tiny":
        from domainspec.common.models.loading import tiny_model_path
        start_path = str(tiny_model_path(spec=cfg.model.tiny))
    # resume: the policy of the last finished iteration
    records: list[dict] = []
    for k in range(cfg.iterations):
        if markers.is_done(out / f"iter_{k}", _key(cfg, k)).action is not Action.SKIP:
            break
        records.append(read_json(out / f"iter_{k}" / "iter.json"))
    policy_path = records[-1]["policy"] if records else start_path
    policy, tok = load_model_and_tokenizer(_weights(cfg, policy_path), for_training=True)
    result: dict[str, Any] = {"start": None}
    if cfg.eval_start:
        start_cfg = cfg.model.model_copy(update={"name_or_path": start_path})
        # a worker pool loads the weights itself: no in-process copy then
        start_model = None if cfg.eval.sampling.workers > 1 else load_model_and_tokenizer(start_cfg)[0]
        result["start"] = _evaluate(cfg, start_cfg, start_model, tok, sets["heldout"], out / "eval_start",
                                    start_path)
        del start_model
    reference, _ = load_model_and_tokenizer(_weights(cfg, cfg.reference or start_path))
    reference.eval()
    health = RewardHealth(cfg.warn_after)
    for r in records:  # the consecutive-step counters continue across a resume
        health.update(r["step"], [g["rewards"] for g in read_jsonl_rows(out / f"iter_{r['step']}" / "samples.jsonl")])
    health.warnings = [r["warning"] for r in records if r.get("warning")]
    with RewardRunner(cfg.reward, cfg.sandbox) as rewards:
        for k in range(len(records), cfg.iterations):
            idir = out / f"iter_{k}"
            markers.mark_running(idir, _key(cfg, k))
            cursor = records[-1]["cursor"] if records else 0
            weights = records[-1]["policy"] if records else start_path
            rec = run_iteration(cfg, k, idir, policy, tok, reference, rewards, sets["train"], cursor, health,
                                weights, _optimizer_state(cfg, out, k))
            rec["policy"] = str(idir / "final") if (idir / "final").is_dir() else weights
            if is_rank0():
                write_json(rec, idir / "iter.json")
                markers.write_done(idir, _key(cfg, k), elapsed_s=rec["seconds"])
                _drop_older_optimizer_states(out, k)
            records.append(rec)
    final_policy = records[-1]["policy"]
    result["end"] = _evaluate(cfg, _weights(cfg, final_policy), policy, tok, sets["heldout"], out / "eval",
                              content_hash([cfg.content_hash(), final_policy]))
    summary = {"start_model": start_path, "final_policy": final_policy, "reward": cfg.reward.preset,
               "heldout_pass@1": {"start": _pass1(result["start"]), "end": _pass1(result["end"])},
               "heldout_problems": len(sets["heldout"]), "health": [_health_row(r) for r in records],
               "warnings": health.warnings, "seconds": round(time.perf_counter() - started, 1),
               "updates": sum(cfg.epochs_per_batch * cfg.minibatches for r in records if r.get("loss") is not None)}
    if is_rank0():
        write_jsonl([_health_row(r) for r in records], out / "health.jsonl")
        write_json(summary, out / "summary.json")
        (out / "report.md").write_text(markdown(summary))
        link = out / "final"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(Path(final_policy).resolve(), target_is_directory=True)
        markers.write_done(out, cfg.content_hash(), step="grpo", elapsed_s=summary["seconds"])
    return summary


def _pass1(res: dict | None) -> float | None:
    return None if not res else res.get("cot", {}).get("pass@1")


HEALTH_COLUMNS = ("step", "reward_mean", "reward_std", "zero_variance_groups", "trained_groups", "kl",
                  "clip_fraction", "response_tokens", "overlong_fraction", "reward_timeouts", "loss",
                  "generate_s", "train_s")


def _health_row(r: dict) -> dict:
    return {c: r.get(c) for c in HEALTH_COLUMNS}


def health_table(rows: Sequence[dict]) -> str:
    def cell(v):
        return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(HEALTH_COLUMNS) + " |", "|" + "---|" * len(HEALTH_COLUMNS)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in HEALTH_COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def markdown(summary: dict) -> str:
    p = summary["heldout_pass@1"]
    lines = ["# GRPO", "", f"Start: `{summary['start_model']}`, reward `{summary['reward']}`", "",
             f"Held-out greedy pass@1 ({summary['heldout_problems']} problems, the one grader): "
             f"start {_fmt(p['start'])} -> end {_fmt(p['end'])}", "", "## Reward health per step", "",
             health_table(summary["health"]), ""]
    if summary["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in summary["warnings"]] + [""]
    lines += [f"Total time: {summary['seconds']:.0f} s", ""]
    return "\n".join(lines)


def _run_stage(cfg: GRPOConfig, ctx) -> dict:
    s = run_grpo(cfg, ctx.out_dir)
    return {"heldout_pass@1": s["heldout_pass@1"], "reward_health": s["health"], "warnings": len(s["warnings"]),
            "seconds": s["seconds"]}


GRPO_STAGE = StageType("grpo", GRPOConfig, _run_stage, outputs={"model": "final", "report": "report.md",
                                                               "summary": "summary.json"},
                       distributed=True, description="GRPO on math problems (verifier / RM / shaped rewards) "
                                                     "with reward health per step")
