"""Data-parallel GRPO rollouts: 2 CPU ranks under the `deepspeed` launcher reproduce one process.

Launched as a user launches it on GPUs:
``deepspeed --num_gpus 2 --module domainspec.common.cli math grpo --config grpo.yaml --out DIR``.
Each rank samples and rewards half of every round's prompts (interleaved) and the groups are gathered
in prompt order; the run must equal a single process's: the same prompts, completions and rewards per
iteration (exactly: sampling is seeded per prompt and sample index), the same dynamic-sampling choices,
and the same loss trajectory. Stated tolerance: per-step loss within rel 1e-3 + abs 1e-5 (measured: the
first step of each iteration bit-equal, later ones <= 1.2e-4 relative at lr 1e-2: the old-policy logprobs
are scored in differently padded batches and the ranks' gradients are summed in another order, which the
updates amplify); the micro config uses micro-batches of one row so both runs split the steps the same way.
~75 s on the shared 2-core machine (one process, then 2 ranks): marked slow.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")
sys.path.insert(0, str(Path(__file__).parent))
from trainer_fixture import read_metrics, subprocess_env  # noqa: E402
from test_deepspeed_multiproc import _free_port  # noqa: E402

LOSS_RTOL, LOSS_ATOL = 1e-3, 1e-5
ITERATIONS = 2

# a random tiny policy; the reward is the completion's length (tests/rl_reward_fns.py, run in the
# sandbox), so groups have unequal rewards and the updates are real
CONFIG = f"""\
model: {{name_or_path: "{{model}}"}}
problems: {{kinds: [arithmetic], num: 16, heldout: 0}}
eval_start: false
sampling: {{n: 2, temperature: 1.0, top_p: 1.0, max_new_tokens: 6, batch_size: 64}}
reward: {{preset: "rl_reward_fns:length", timeout_s: 20}}
sandbox: {{workers: 1}}
iterations: {ITERATIONS}
prompts_per_iteration: 4
max_sampling_tries: 2
epochs_per_batch: 2
minibatches: 2
overlong_mask: false
train: {{lr: 0.01, micro_batch_size: 1}}
"""


def _env() -> dict:
    env = subprocess_env()
    env["PYTHONPATH"] = str(Path(__file__).parent) + ":" + env.get("PYTHONPATH", "")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The config file and the single-process reference run."""
    from domainspec.common.models.loading import tiny_model_path
    root = tmp_path_factory.mktemp("grpo_dp")
    cfg = root / "grpo.yaml"
    cfg.write_text(CONFIG.replace("{model}", str(tiny_model_path())))  # built once, so the ranks do not race
    single = root / "single"
    r = subprocess.run([sys.executable, "-m", "domainspec.common.cli", "math", "grpo", "--config", str(cfg),
                        "--out", str(single)], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return cfg, single


def _samples(out: Path, k: int) -> list[dict]:
    return [json.loads(x) for x in (out / f"iter_{k}" / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_sample_disjoint_shares_and_match_one_process(setup, tmp_path):
    if shutil.which("deepspeed") is None:
        pytest.skip("the deepspeed launcher is not on PATH")
    cfg, single = setup
    out = tmp_path / "two"
    r = subprocess.run(["deepspeed", "--num_gpus", "2", "--master_port", str(_free_port()), "--module",
                        "domainspec.common.cli", "math", "grpo", "--config", str(cfg), "--out", str(out)],
                       env=_env(), capture_output=True, text=True, timeout=400)
    logs = r.stdout + r.stderr
    assert r.returncode == 0, logs[-4000:]
    assert "world size 2" in logs
    assert "grpo step 0 round 0: rank 0 samples 2 of 4 prompts" in logs
    assert "grpo step 0 round 0: rank 1 samples 2 of 4 prompts" in logs
    trained = 0
    for k in range(ITERATIONS):
        a, b = _samples(single, k), _samples(out, k)
        # the same prompts in the same order (dynamic sampling refilled identically), the same completions
        # and rewards
        assert [(g["id"], g["completions"], g["rewards"]) for g in b] == \
               [(g["id"], g["completions"], g["rewards"]) for g in a]
        assert any(len(set(g["rewards"])) > 1 for g in a)  # there is something to train on
        ia, ib = (json.loads((d / f"iter_{k}" / "iter.json").read_text()) for d in (single, out))
        assert ib["trained_groups"] == ia["trained_groups"] > 0 and ib["cursor"] == ia["cursor"]
        ma, mb = read_metrics(single / f"iter_{k}"), read_metrics(out / f"iter_{k}")
        assert [m["step"] for m in mb] == [m["step"] for m in ma] == [1, 2, 3, 4]
        for x, y in zip(ma, mb):
            assert y["loss"] == pytest.approx(x["loss"], rel=LOSS_RTOL, abs=LOSS_ATOL), (k, x, y)
        trained += sum(abs(m["loss"]) > 0 for m in ma)
    assert trained > 0  # the losses compared are not all zero
    # one optimizer over the run on both (carry_optimizer): each rank loaded its state from iteration 0's
    # checkpoint, and only the newest state is left
    for d in (single, out):
        assert [p.parent.name for p in d.glob("iter_*/checkpoints")] == [f"iter_{ITERATIONS - 1}"]
    # the second iteration samples from the updated policy: the updates reached generation on every rank
    assert _samples(single, 1) != _samples(single, 0)
