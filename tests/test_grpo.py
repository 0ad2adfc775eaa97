"""GRPO (math/grpo.py) and its rewards (math/rewards.py): presets, time limits, contract errors, reward health,
dynamic sampling, a micro run with a broken verifier (warning, resume)."""
import logging
import time

import pytest

from domainspec.common.config import load_config
from domainspec.common.pipeline.markers import read_done
from domainspec.math.grpo import GRPOConfig, RewardHealth, _sample, run_grpo
from domainspec.math.rewards import RewardConfig, RewardError, RewardRunner, qwen_math_reward
from test_math_fakes import ChatTemplate

from domainspec.common.sandbox.pool import SandboxConfig

SANDBOX = SandboxConfig(workers=1)


@pytest.mark.parametrize("rm, verified, expected", [
    (0.0, True, 0.5), (0.0, False, -0.5), (4.0, False, 1 / (1 + 2.718281828 ** -2) - 1), (-30.0, True, 0.0)])
def test_qwen_math_shaping(rm, verified, expected):
    assert qwen_math_reward(rm, verified) == pytest.approx(expected, abs=1e-6)


def test_qwen_math_shaping_puts_every_verified_answer_above_every_wrong_one():
    worst_right = min(qwen_math_reward(s, True) for s in (-50, -5, 0, 5, 50))
    best_wrong = max(qwen_math_reward(s, False) for s in (-50, -5, 0, 5, 50))
    assert worst_right > best_wrong


def test_verifier_uses_the_one_grader():
    with RewardRunner(RewardConfig(preset="verifier")) as rewards:
        got = rewards(["q1", "q2"], [["so \\boxed{5}", "\\boxed{6}"], ["\\boxed{\\frac{1}{2}}"]], ["5", "0.5"])
    assert got == [[1.0, 0.0], [1.0]]


def test_bad_presets_are_refused_before_work():
    with pytest.raises(ValueError, match="reward preset 'verifer'"):
        RewardConfig(preset="verifer")
    with pytest.raises(RewardError, match="needs reward.rm"):
        RewardRunner(RewardConfig(preset="qwen-math"))
    with pytest.raises(RewardError, match="does not load"):
        RewardRunner(RewardConfig(preset="rl_reward_fns:missing"))


def test_user_function_runs_in_the_sandbox():
    with RewardRunner(RewardConfig(preset="rl_reward_fns:length"), SANDBOX) as rewards:
        assert rewards(["q", "r"], [["ab", "abcd"], ["x"]], ["1", None]) == [[2.0, 4.0], [1.0]]


def test_a_hanging_reward_function_is_killed_at_its_limit_and_counts_zero(caplog):
    cfg = RewardConfig(preset="rl_reward_fns:hang", timeout_s=1.0)
    with caplog.at_level(logging.WARNING, logger="domainspec.math.rewards"):
        with RewardRunner(cfg, SANDBOX) as rewards:
            t0 = time.perf_counter()
            got = rewards(["q"], [["a", "b", "c"]], ["1"])
            took = time.perf_counter() - t0
            assert rewards.stats.timeouts == 1
    assert got == [[0.0, 0.0, 0.0]]
    assert took < 15  # the limit, not the function, ended the call
    assert "killed at its 1 s limit; its 3 rewards count 0" in caplog.text


@pytest.mark.parametrize("fn, message", [
    ("too_few", "returned 1 values for 2 completions"),
    ("not_numbers", "value 0 is 'high'"),
    ("boom", "reward server unreachable"),
])
def test_reward_function_contract_errors(fn, message):
    with RewardRunner(RewardConfig(preset=f"rl_reward_fns:{fn}"), SANDBOX) as rewards:
        with pytest.raises(RewardError, match=message):
            rewards(["q"], [["a", "b"]], ["1"])


def test_all_zero_rewards_warn_within_warn_after_steps(caplog):
    health = RewardHealth(warn_after=3)
    with caplog.at_level(logging.WARNING, logger="domainspec.math.grpo"):
        rows = [health.update(k, [[0.0] * 4, [0.0] * 4]) for k in range(4)]
    assert [("warning" in r) for r in rows] == [False, False, True, True]
    assert "all ZERO for 3 consecutive steps" in caplog.text
    assert rows[0]["zero_variance_groups"] == 1.0 and rows[0]["reward_mean"] == 0.0


def test_equal_rewards_warn_and_a_healthy_step_resets_the_count():
    health = RewardHealth(warn_after=2)
    assert "warning" not in health.update(0, [[1.0, 1.0]])
    assert "warning" not in health.update(1, [[1.0, 0.0], [1.0, 1.0]])  # signal: the run restarts
    assert "warning" not in health.update(2, [[1.0, 1.0]])
    row = health.update(3, [[1.0, 1.0]])
    assert "all EQUAL (1)" in row["warning"]
    assert row["zero_variance_groups"] == 1.0


class _Backend(ChatTemplate):
    """Completions by prompt: the problem's answer on even groups, a wrong one on odd (a scripted policy)."""

    def __init__(self):
        self.params = []

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        self.params.append(params)
        return [[f"\\boxed{{{k}}}" for k in range(params.n)] for _ in prompts]


def test_dynamic_sampling_drops_equal_groups_refills_and_stops_after_max_tries():
    cfg = GRPOConfig(prompts_per_iteration=3, max_sampling_tries=2, sampling={"n": 4, "temperature": 0.9,
                                                                             "top_p": 0.8})
    pool = [{"id": str(i), "question": f"q{i}", "answer": str(i % 2 + (0 if i % 3 else 10))} for i in range(10)]
    backend = _Backend()
    seen = []
    with RewardRunner(RewardConfig()) as rewards:
        kept, cursor = _sample(cfg, backend, rewards, pool, 0, 0, seen)
    # completions are \boxed{0..3}: problems whose answer is 0 or 1 have one right sample, 10 or 11 none
    assert [g["id"] for g in kept] == [g["id"] for g in seen if len(set(g["rewards"])) > 1]
    assert len(seen) == 3 + (3 - len([g for g in seen[:3] if len(set(g["rewards"])) > 1]))
    assert cursor == len(seen) and len(backend.params) == 2  # bounded: two sampling rounds
    # the requested sampling reaches the backend as configured (no model config in between), seed per round
    assert {(p.temperature, p.top_p, p.n) for p in backend.params} == {(0.9, 0.8, 4)}
    assert backend.params[0].seed != backend.params[1].seed


@pytest.mark.parametrize("override, message", [
    ("sampling.n=1", "group size G"), ("sampling.temperature=0", "identical"),
("loss.clip_low=1.5", "clip_low")])
def test_bad_grpo_config_is_refused(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(GRPOConfig, None, [override])


MICRO = ["model.name_or_path=tiny", "model.tiny.hidden_size=32", "model.tiny.num_hidden_layers=1",
         "model.tiny.intermediate_size=64", "model.tiny.num_attention_heads=2", "model.tiny.num_key_value_heads=1",
         "model.tiny.vocab_size=300", "problems.kinds=[arithmetic]", "problems.num=8", "problems.heldout=2",
         "iterations=3", "prompts_per_iteration=2", "sampling.n=2", "sampling.max_new_tokens=4",
         "train.micro_batch_size=2", "warn_after=2", "max_sampling_tries=1", "eval.sampling.max_new_tokens=4"]


def test_broken_verifier_run_warns_trains_nothing_and_resumes(tmp_path, caplog):
    """A random tiny model never writes the answer: all-zero rewards, the warning at step 2, no update."""
    cfg = load_config(GRPOConfig, None, MICRO)
    with caplog.at_level(logging.WARNING, logger="domainspec.math.grpo"):
        summary = run_grpo(cfg, tmp_path)
    assert [r["reward_mean"] for r in summary["health"]] == [0.0, 0.0, 0.0]
    assert len(summary["warnings"]) == 2 and "all ZERO for 2 consecutive steps" in summary["warnings"][0]
    assert "REWARD HEALTH" in caplog.text and "REWARD HEALTH" in (tmp_path / "report.md").read_text()
    assert summary["updates"] == 0 and summary["heldout_pass@1"]["start"] == summary["heldout_pass@1"]["end"]
    assert read_done(tmp_path, "grpo") is not None and (tmp_path / "final").is_symlink()
    # a rerun skips every finished iteration and keeps the warnings
    mtime = (tmp_path / "iter_1" / "samples.jsonl").stat().st_mtime
    again = run_grpo(cfg, tmp_path)
    assert (tmp_path / "iter_1" / "samples.jsonl").stat().st_mtime == mtime
    assert again["warnings"] == summary["warnings"]
    with pytest.raises(ValueError, match="another config"):
        run_grpo(load_config(GRPOConfig, None, MICRO + ["iterations=4"]), tmp_path)


def test_a_step_batch_that_does_not_split_over_the_ranks_is_refused():
    from domainspec.math.grpo import _train_config
    cfg = load_config(GRPOConfig, None, ["sampling.n=3", "minibatches=2", "train.micro_batch_size=8"])
    two = _train_config(cfg, 4 * 3 * 2, 0, world=2)  # 4 groups per step x G=3 = 12 responses: 6 per rank
    assert (two.global_batch_size, two.micro_batch_size, two.max_steps) == (12, 2, 2)
    with pytest.raises(ValueError, match=r"batch of 9 responses \(3 groups x sampling.n 3\) does not split over 2"):
        _train_config(cfg, 6 * 3, 0, world=2)


def test_rollouts_through_a_worker_pool_equal_in_process_rollouts_after_updates(tmp_path):
    """sampling.workers 2: the pool loads each iteration's starting weights (the previous iteration's final
    folder), so the groups, the updates and the held-out scores equal the in-process run's."""
    import json

    from domainspec.common.models.worker_pool import stop_parked_workers

    run = MICRO + ["iterations=2", "prompts_per_iteration=4", "sampling.n=4", "sampling.max_new_tokens=12",
                   "train.lr=2e-2", "reward.preset=rl_reward_fns:length", "eval.sampling.max_new_tokens=12",
                   "overlong_mask=false"]
    try:
        one = run_grpo(load_config(GRPOConfig, None, run), tmp_path / "one")
        two = run_grpo(load_config(GRPOConfig, None, run + ["sampling.workers=2", "eval.sampling.workers=2"]),
                       tmp_path / "two")
    finally:
        stop_parked_workers()
    assert one["updates"] == two["updates"] > 0
    samples = [[json.loads(line) for line in (tmp_path / d / "iter_1" / "samples.jsonl").open()]
               for d in ("one", "two")]
    assert samples[0] == samples[1]
    assert one["heldout_pass@1"] == two["heldout_pass@1"]
    assert [r["reward_mean"] for r in one["health"]] == [r["reward_mean"] for r in two["health"]]


def _adam_steps(ckpts) -> set[int]:
    import torch
    (step_dir,) = sorted(ckpts.glob("step_*"))
    states = torch.load(step_dir / "mp_rank_00_model_states.pt", weights_only=False)["optimizer"]["state"]
    return {int(s["step"]) for s in states.values()}


def test_the_optimizer_state_carries_across_iterations_and_resumes(tmp_path, monkeypatch):
    """carry_optimizer (default): one AdamW over the run, its newest state the only one kept; a rerun after a
    kill in the last iteration continues from the previous iteration's state and ends on the same weights;
    carry_optimizer false ends elsewhere and keeps no optimizer state."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    run = MICRO + ["prompts_per_iteration=4", "sampling.n=4", "sampling.max_new_tokens=12", "train.lr=2e-2",
                   "reward.preset=rl_reward_fns:length", "overlong_mask=false", "eval_start=false"]
    carried = run_grpo(load_config(GRPOConfig, None, run), tmp_path / "carry")
    per_iter = 2  # epochs_per_batch 1 x minibatches 2 (the defaults)
    assert carried["updates"] == 3 * per_iter
    assert not (tmp_path / "carry" / "iter_0" / "checkpoints").exists()
    assert not (tmp_path / "carry" / "iter_1" / "checkpoints").exists()
    assert _adam_steps(tmp_path / "carry" / "iter_2" / "checkpoints") == {3 * per_iter}
    weights = load_file(tmp_path / "carry" / "iter_2" / "final" / "model.safetensors")

    # a crash in iteration 2 after its sampling (iterations 0 and 1 done): the rerun continues from iteration
    # 1's optimizer state, the only one left on disk then
    import domainspec.common.train.loop as loop
    real_train = loop.train

    def crash_in_iteration_2(*args, **kwargs):
        if Path(args[5]).name == "iter_2":
            raise KeyboardInterrupt("killed")
        return real_train(*args, **kwargs)
    monkeypatch.setattr(loop, "train", crash_in_iteration_2)
    with pytest.raises(KeyboardInterrupt):
        run_grpo(load_config(GRPOConfig, None, run), tmp_path / "killed")
    assert [p.parent.name for p in (tmp_path / "killed").glob("iter_*/checkpoints")] == ["iter_1"]
    assert _adam_steps(tmp_path / "killed" / "iter_1" / "checkpoints") == {2 * per_iter}
    monkeypatch.setattr(loop, "train", real_train)
    run_grpo(load_config(GRPOConfig, None, run), tmp_path / "killed")
    again = load_file(tmp_path / "killed" / "iter_2" / "final" / "model.safetensors")
    assert all(torch.equal(weights[k], again[k]) for k in weights)

    fresh = run_grpo(load_config(GRPOConfig, None, run + ["carry_optimizer=false"]), tmp_path / "fresh")
    assert fresh["updates"] == carried["updates"]
    assert not list((tmp_path / "fresh").glob("iter_*/checkpoints"))
    other = load_file(tmp_path / "fresh" / "iter_2" / "final" / "model.safetensors")
    assert max((weights[k] - other[k]).abs().max().item() for k in weights) > 1e-4
