"""CPT on prepared shards: which sequence ids each rank consumes (``train.record_data_order``).

- the step stream is one seeded permutation per epoch, sliced by rank: 2 ranks read disjoint
  slices that together cover every sequence once per epoch, in the single-rank order;
- SIGKILL mid-training, then ``--resume`` on the same number of ranks, or on 2 ranks from a
  1-rank checkpoint (ZeRO-0 as saved; ZeRO-2 through DeepSpeed's universal checkpoint): the ids
  consumed, in order, are exactly those of an uninterrupted run (nothing replayed, nothing skipped).

The CPT CLI is launched as users launch it (``python -m ...cpt_cli``, ``deepspeed --num_gpus 2``
on CPU ranks, as tests/test_deepspeed_multiproc.py does). The 2-rank runs are marked slow (~1 min).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("deepspeed")

sys.path.insert(0, str(Path(__file__).parent))
from trainer_fixture import subprocess_env as _env  # noqa: E402

from domainspec.common.artifacts import read_jsonl_rows  # noqa: E402
from domainspec.common.train.loop import StepSampler, _Plan  # noqa: E402

STEPS, BATCH, SAVE = 30, 4, 4
CLI = [sys.executable, "-m", "domainspec.common.recipes.cpt_cli"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _order(out: Path) -> list[list[int]]:
    """Per step, the ids all ranks consumed (rank 0's slice first): the global stream as trained."""
    ranks = sorted((out / "data_order").glob("rank*.jsonl"))
    rows = [{r["step"]: r["ids"] for r in read_jsonl_rows(p, tolerate_torn_tail=True)} for p in ranks]
    steps = sorted(set().union(*rows))
    return [[i for rk in rows for i in rk.get(s, [])] for s in steps]


def _expected(n: int, steps: int = STEPS) -> list[list[int]]:
    plan = _Plan(world_size=1, rank=0, seq_len=0, global_batch=BATCH, grad_accum=BATCH, total_steps=steps)
    s = StepSampler(n, plan, micro=1, seed=0)
    return [[i for m in s.micro_batches(step) for i in m] for step in range(steps)]


def _dataset_len(out: Path) -> int:
    return json.loads(sorted((out / "checkpoints").glob("step_*"))[-1].joinpath("trainer_state.json").read_text())[
        "dataset_len"]


def test_step_stream_is_rank_independent_and_covers_each_epoch():
    """In process: for 1, 2 and 4 ranks the per-step slices are disjoint, concatenate to the same stream,
    and every epoch of that stream is a permutation of all sequences."""
    n, gb = 24, 8
    streams = []
    for world in (1, 2, 4):
        per_rank = [StepSampler(n, _Plan(world, r, 0, gb, gb // world, 6), 1, seed=5) for r in range(world)]
        stream = []
        for step in range(6):
            slices = [[i for m in s.micro_batches(step) for i in m] for s in per_rank]
            assert sum(map(len, slices)) == len({i for sl in slices for i in sl}) == gb  # disjoint
            stream += [i for sl in slices for i in sl]
        streams.append(stream)
    assert streams[0] == streams[1] == streams[2]
    assert [sorted(streams[0][e * n:(e + 1) * n]) for e in range(2)] == [list(range(n))] * 2
    assert streams[0][:n] != streams[0][n:]  # a new shuffle per epoch


def test_dataloader_workers_prefetch_the_same_batches(tmp_path):
    """data_workers=2 (DataLoader processes building the next steps) trains bitwise like 0, on shards."""
    from domainspec.common.data.decontam import DecontamConfig
    from domainspec.common.data.packing import PackedCollator
    from domainspec.common.data.prepare import PrepareConfig, prepare
    from domainspec.common.data.shards import ShardDataset
    from domainspec.common.data.sources import DataSourceConfig
    from domainspec.common.train.loop import TrainConfig, train
    from domainspec.common.train.objectives import CausalLMObjective
    from data_helpers import small_tokenizer, tiny_qwen2
    tok = small_tokenizer()
    folder, _ = prepare([DataSourceConfig(path="builtin:math_corpus", limit=40)], tok, PrepareConfig(workers=0),
                        tmp_path / "data", 48, decontam=DecontamConfig(enabled=False))
    ds = ShardDataset(folder)
    curves = []
    for workers in (0, 2):
        cfg = TrainConfig(lr=3e-3, max_steps=4, global_batch_size=4, micro_batch_size=2, log_every=1, progress=False,
                          data_workers=workers, record_data_order=True)
        model = tiny_qwen2("sdpa", vocab_size=len(tok)).train()
        train(model, None, ds, CausalLMObjective("sdpa", collator=PackedCollator("sdpa")), cfg, tmp_path / str(workers))
        rows = [json.loads(x) for x in (tmp_path / str(workers) / "metrics.jsonl").read_text().splitlines()]
        curves.append(([r["loss"] for r in rows], _order(tmp_path / str(workers))))
    assert curves[0] == curves[1] and len(curves[0][1]) == 4


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A 1-rank CPT run on prepared shards, SIGKILLed after its 2nd checkpoint, mid-step."""
    return _killed_run(tmp_path_factory.mktemp("cptresume"), zero_stage=0)


@pytest.fixture(scope="module")
def killed_zero2(tmp_path_factory):
    """The same under ZeRO-2: the optimizer state is sharded per rank in the checkpoint."""
    return _killed_run(tmp_path_factory.mktemp("cptresume_z2"), zero_stage=2)


def _killed_run(root: Path, zero_stage: int):
    from domainspec.common.models.loading import tiny_model_path
    model = tiny_model_path()  # built once here, so the ranks do not race to build it
    cfg = root / "cpt.yaml"
    cfg.write_text(f"""\
model: {{name_or_path: "{model}"}}
seq_len: 64
data: [{{path: "builtin:math_corpus", limit: 40}}]
decontam: {{enabled: false}}
prepare: {{workers: 1}}
train: {{lr: 2.0e-3, max_steps: {STEPS}, global_batch_size: {BATCH}, micro_batch_size: 1, save_every: {SAVE},
         keep_last: 1, log_every: 1, progress: false, record_data_order: true, data_workers: 1,
         zero_stage: {zero_stage}}}
""")
    out = root / "run"
    proc = subprocess.Popen([*CLI, "--config", str(cfg), "--out", str(out)], env=_env(), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    order = out / "data_order" / "rank0.jsonl"

    def started() -> int:  # steps begun (a row is written when a step starts)
        return order.read_text().count("\n") if order.exists() else 0

    # after the 2nd checkpoint, with steps begun past it
    while proc.poll() is None and time.time() < deadline and not (
            (out / "checkpoints" / f"step_{2 * SAVE:06d}").is_dir() and started() >= 2 * SAVE + 2):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its DataLoader worker
    log = proc.communicate()[0].decode()
    assert proc.returncode == -signal.SIGKILL, log[-3000:]
    assert not (out / "final").exists(), "the run finished before it was killed"
    return cfg, out


def _resume(cfg: Path, src: Path, dst: Path, ranks: int, *extra: str) -> subprocess.CompletedProcess:
    shutil.copytree(src, dst)
    if ranks == 1:
        cmd = [*CLI, "--config", str(cfg), "--out", str(dst), *extra]
    else:
        if shutil.which("deepspeed") is None:
            pytest.fail("the deepspeed launcher is not on PATH (pip install deepspeed)")
        cmd = ["deepspeed", "--num_gpus", str(ranks), "--master_port", str(_free_port()), "--module",
               "domainspec.common.recipes.cpt_cli", "--config", str(cfg), "--out", str(dst), *extra]
    r = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _check_exact_continuation(killed_out: Path, out: Path) -> None:
    saved = int(json.loads((sorted((killed_out / "checkpoints").glob("step_*"))[-1] / "trainer_state.json")
                           .read_text())["step"])
    before = _order(killed_out)
    assert len(before) >= saved >= 2 * SAVE and len(before) >= 2 * SAVE + 2, "the kill should land mid-run"
    n = _dataset_len(out)
    got, want = _order(out), _expected(n)
    assert got[:saved] == before[:saved]  # the steps up to the checkpoint, as first consumed
    assert got == want  # then exactly the next unseen sequences: none replayed, none skipped
    flat = [i for step in got for i in step]
    for e in range(len(flat) // n):  # every full epoch sees every sequence once
        assert sorted(flat[e * n:(e + 1) * n]) == list(range(n))


def test_sigkill_then_resume_same_ranks_continues_at_next_unseen_sequence(killed, tmp_path):
    cfg, out = killed
    r = _resume(cfg, out, tmp_path / "same", 1)
    assert "resumed from" in r.stdout + r.stderr and "prepared" not in r.stdout + r.stderr  # shards reused
    _check_exact_continuation(out, tmp_path / "same")


def test_another_rank_count_is_refused_when_resharding_is_off(killed, tmp_path):
    from domainspec.common.train.checkpoint import Checkpointer
    _, out = killed
    with pytest.raises(RuntimeError, match="written by 1 ranks but this run has 2 and train.reshard_on_resume is "
                                           "false"):
        Checkpointer(out / "checkpoints", 1, rank=0, world_size=2).load(None, {}, reshard=False)


@pytest.mark.slow
def test_sigkill_then_resume_on_two_ranks_reshards_the_data_position(killed, tmp_path):
    cfg, out = killed
    r = _resume(cfg, out, tmp_path / "two", 2)  # train.reshard_on_resume defaults to true
    assert "world size 2" in r.stdout + r.stderr and "data position resharded" in r.stdout + r.stderr
    _check_exact_continuation(out, tmp_path / "two")
    ranks = {p.name: [json.loads(x) for x in p.read_text().splitlines()]
             for p in (tmp_path / "two" / "data_order").glob("rank*.jsonl")}
    assert set(ranks) == {"rank0.jsonl", "rank1.jsonl"}
    assert all(len(r["ids"]) == BATCH // 2 for r in ranks["rank1.jsonl"])


@pytest.mark.slow
def test_two_ranks_read_disjoint_slices_covering_each_epoch(killed, tmp_path):
    cfg, _ = killed
    out = tmp_path / "fresh2"
    if shutil.which("deepspeed") is None:
        pytest.fail("the deepspeed launcher is not on PATH (pip install deepspeed)")
    r = subprocess.run(["deepspeed", "--num_gpus", "2", "--master_port", str(_free_port()), "--module",
                        "domainspec.common.recipes.cpt_cli", "--config", str(cfg), "--out", str(out),
                        "--set", "train.data_workers=0"], env=_env(), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    per_rank = [{x["step"]: x["ids"] for x in map(json.loads, (out / "data_order" / f"rank{k}.jsonl").read_text()
                                                  .splitlines())} for k in (0, 1)]
    n = _dataset_len(out)
    assert all(not set(per_rank[0][s]) & set(per_rank[1][s]) for s in per_rank[0])  # disjoint at every step
    flat = [i for s in sorted(per_rank[0]) for i in per_rank[0][s] + per_rank[1][s]]
    assert len(flat) == STEPS * BATCH and len(flat) >= 2 * n
    for e in range(len(flat) // n):
        assert sorted(flat[e * n:(e + 1) * n]) == list(range(n))
    assert _order(out) == _expected(n)


@pytest.mark.slow
def test_zero2_checkpoint_resumes_on_two_ranks_through_the_universal_checkpoint(killed_zero2, tmp_path):
    """ZeRO-2 shards Adam's moments per rank: the 1-rank checkpoint is converted once with DeepSpeed's
    ds_to_universal, re-partitioned over 2 ranks, and training continues at the next unseen sequence."""
    cfg, out = killed_zero2
    r = _resume(cfg, out, tmp_path / "two", 2)
    log = r.stdout + r.stderr
    assert "via DeepSpeed's universal checkpoint" in log and "ZeRO-2" in log, log[-3000:]
    _check_exact_continuation(out, tmp_path / "two")
