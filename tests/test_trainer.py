"""The training loop: smoke (loss finite, every parameter changed), kill -9 + resume == straight run,
token-weighted accumulation, refusals, golden per-step losses of the fixture."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from domainspec.common.config import ConfigError, build_config  # noqa: E402
from domainspec.common.train.objectives import CausalLMObjective  # noqa: E402
from domainspec.common.train.loop import TrainConfig, train  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import trainer_fixture as fx  # noqa: E402

FIXTURE = Path(__file__).parent / "trainer_fixture.py"
# the fixture run used by the resume test: 8 steps, grad accum 4, checkpoint every 4
RUN = ["--set", "max_steps=8", "--set", "global_batch_size=8", "--set", "micro_batch_size=2",
       "--set", "save_every=4", "--set", "keep_last=1"]


_env = fx.subprocess_env
_metrics = fx.read_metrics


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(folder / "model.safetensors")


def test_smoke_every_parameter_changes_and_final_loads(tmp_path):
    model = fx.tiny_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(lr=3e-3, max_steps=6, global_batch_size=4, micro_batch_size=2, log_every=2, progress=False)
    res = train(model, None, fx.synthetic_rows(32), CausalLMObjective(collator=fx.stack_collate), cfg, tmp_path)
    rows = _metrics(tmp_path)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert set(rows[0]) >= {"step", "loss", "lr", "grad_norm", "tokens_per_second", "mfu"}
    assert all(torch.isfinite(torch.tensor(r["loss"])) and r["grad_norm"] > 0 for r in rows)
    assert rows[-1]["loss"] < rows[0]["loss"]
    from transformers import AutoModelForCausalLM
    loaded = AutoModelForCausalLM.from_pretrained(res.final_dir)
    for name, p in loaded.named_parameters():
        assert not torch.equal(p, before[name]), f"{name} did not change"
    assert (tmp_path / "train_config.yaml").is_file()


def test_objective_mean_times_targets_is_the_sum():
    """The loop's weighting relies on this: loss(batch) * num_targets(batch) adds up across micro-batches."""
    model = fx.tiny_model()
    rows = fx.synthetic_rows(4)
    obj = CausalLMObjective(collator=fx.stack_collate)
    parts = [obj.collate(rows[:1]), obj.collate(rows[1:])]
    with torch.no_grad():
        whole = obj.loss(model, obj.collate(rows))[0]
        means = [obj.loss(model, b)[0] for b in parts]
    counts = [obj.num_targets(b) for b in parts]
    assert sum(counts) == obj.num_targets(obj.collate(rows)) and counts[0] * 3 != counts[1]
    assert sum(m * n for m, n in zip(means, counts)) / sum(counts) == pytest.approx(float(whole), rel=1e-6)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """Same global batch as 4 micro-batches of 2 or 1 of 8: same trajectory (token-weighted accumulation)."""
    rows = fx.synthetic_rows(32)
    obj = CausalLMObjective(collator=fx.stack_collate)
    curves = []
    for micro in (2, 8):
        cfg = TrainConfig(lr=3e-3, max_steps=5, global_batch_size=8, micro_batch_size=micro, log_every=1,
                          progress=False)
        train(fx.tiny_model(), None, rows, obj, cfg, tmp_path / str(micro))
        curves.append([(r["loss"], r["grad_norm"]) for r in _metrics(tmp_path / str(micro))])
    for (la, ga), (lb, gb) in zip(*curves):
        assert la == pytest.approx(lb, rel=1e-5) and ga == pytest.approx(gb, rel=1e-4)


def test_sigkill_after_checkpoint_then_resume_is_identical(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([sys.executable, str(FIXTURE), str(straight), *RUN], env=_env(), check=True,
                   capture_output=True, timeout=300)
    # same run, but from the 5th step on each loss call sleeps, so we can SIGKILL it mid-run
    proc = subprocess.Popen([sys.executable, str(FIXTURE), str(killed), *RUN, "--slow-after", "16"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ckpt = killed / "checkpoints" / "step_000004"
    deadline = time.time() + 240
    while not ckpt.is_dir() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.is_dir(), proc.communicate()[0].decode()[-3000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "final").exists()
    assert max(r["step"] for r in _metrics(killed)) < 8
    r = subprocess.run([sys.executable, str(FIXTURE), str(killed), *RUN], env=_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    a, b = _metrics(straight), _metrics(killed)
    assert [x["step"] for x in b] == list(range(1, 9))
    for key in ("loss", "lr", "grad_norm"):
        assert [x[key] for x in a] == [x[key] for x in b], key  # bitwise: same floats
    wa, wb = _weights(straight / "final"), _weights(killed / "final")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # keep_last=1, and the last step is checkpointed: resuming the finished run trains nothing more
    assert sorted(p.name for p in (killed / "checkpoints").glob("step_*")) == ["step_000008"]
    r = subprocess.run([sys.executable, str(FIXTURE), str(killed), *RUN], env=_env(), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "DONE steps=8" in r.stdout, r.stderr[-3000:]
    assert _metrics(killed) == b


def test_resume_on_other_world_size_and_changed_batch(tmp_path):
    cfg = TrainConfig(lr=1e-3, max_steps=4, global_batch_size=2, save_every=2, progress=False)
    rows = fx.synthetic_rows(8)
    obj = CausalLMObjective(collator=fx.stack_collate)
    train(fx.tiny_model(), None, rows, obj, cfg, tmp_path)
    state_file = tmp_path / "checkpoints" / "step_000004" / "trainer_state.json"  # the newest one
    state = json.loads(state_file.read_text())
    state_file.write_text(json.dumps({**state, "world_size": 2}))
    with pytest.raises(RuntimeError, match="written by 2 ranks but this run has 1 and train.reshard_on_resume is "
                                           "false"):
        train(fx.tiny_model(), None, rows, obj, cfg.model_copy(update={"reshard_on_resume": False}), tmp_path)
    # by default a ZeRO-0 checkpoint of another rank count resumes (the data position is global): a finished
    # run trains nothing more
    assert train(fx.tiny_model(), None, rows, obj, cfg, tmp_path).resumed_from == 4
    state_file.write_text(json.dumps(state))
    with pytest.raises(RuntimeError, match="global_batch was 2 in the checkpoint, now 4"):
        train(fx.tiny_model(), None, rows, obj, cfg.model_copy(update={"global_batch_size": 4}), tmp_path)


def test_bad_train_config_and_batch_split():
    with pytest.raises(ConfigError, match="train.lr_peak: unknown key"):
        build_config(TrainConfig, {"lr_peak": 1e-3}, prefix=("train",))
    with pytest.raises(ConfigError, match="offload_optimizer needs zero_stage >= 1"):
        build_config(TrainConfig, {"offload_optimizer": True})
    with pytest.raises(ValueError, match="global batch 5 sequences is not divisible by micro_batch_size 2"):
        train(fx.tiny_model(), None, fx.synthetic_rows(8), CausalLMObjective(collator=fx.stack_collate),
              TrainConfig(global_batch_size=5, micro_batch_size=2, progress=False), "/nonexistent/never-written")


# Per-step losses of the fixture run (8 steps, batch 8 in 4 micro-batches of 2, lr 3e-3 constant, seed 0) on
# CPU fp32 with torch 2.13 / transformers 5.23. A refactor that should not change numerics must keep these.
GOLDEN = [4.59012, 4.433317, 4.316903, 4.177034, 4.08658, 3.945138, 3.881468, 3.790233]


def test_golden_losses_of_the_fixture(tmp_path):
    cfg = TrainConfig(lr=3e-3, max_steps=8, global_batch_size=8, micro_batch_size=2, log_every=1, progress=False)
    train(fx.tiny_model(), None, fx.synthetic_rows(), CausalLMObjective(collator=fx.stack_collate), cfg, tmp_path)
    losses = [r["loss"] for r in _metrics(tmp_path)]
    assert losses == pytest.approx(GOLDEN, rel=1e-5)


def test_warm_start_carries_the_optimizer_state_into_the_next_run(tmp_path):
    """Full-batch steps (the order within a batch does not matter): 3 steps, then 3 more warm-started from
    the first run's checkpoint, end where one 6-step run ends; a fresh optimizer for the second part does not."""
    rows = fx.synthetic_rows(8)
    obj = CausalLMObjective(collator=fx.stack_collate)

    def run(steps, out, model, warm=None):
        cfg = TrainConfig(lr=3e-3, schedule="constant", warmup_ratio=0.0, max_steps=steps, global_batch_size=8,
                          micro_batch_size=8, log_every=1, save_every=steps, keep_last=1, progress=False)
        return train(model, None, rows, obj, cfg, out, resume=False, warm_start=warm)

    whole = fx.tiny_model()
    run(6, tmp_path / "whole", whole)
    first = fx.tiny_model()
    run(3, tmp_path / "a", first)
    carried = fx.tiny_model()  # other starting weights: the warm start loads the checkpoint's
    run(3, tmp_path / "b", carried, warm=tmp_path / "a" / "checkpoints")
    fresh = first  # the first run's end weights, with a new optimizer
    run(3, tmp_path / "c", fresh)
    gap = {n: (p - dict(carried.named_parameters())[n]).abs().max().item() for n, p in whole.named_parameters()}
    assert max(gap.values()) < 1e-5, gap
    assert max((p - dict(fresh.named_parameters())[n]).abs().max().item()
               for n, p in whole.named_parameters()) > 1e-3
    with pytest.raises(RuntimeError, match="no complete checkpoint"):
        run(1, tmp_path / "d", fx.tiny_model(), warm=tmp_path / "nothing")
