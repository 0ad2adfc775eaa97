"""Data-parallel sampling: ranks split the tasks, write resumable shards, rank 0 merges them into the
same bytes one process writes; a killed rank resumes from its shard; a missing shard is named.

Run as a script, this file is one rank (RANK / WORLD_SIZE from the environment):
``python tests/test_generate_distributed.py DATA OUT [--exit-after K] [--gloo]``.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from domainspec.common.models.sampling import SamplingConfig

SAMPLING = SamplingConfig(n=2, temperature=0.7, top_p=0.95, max_new_tokens=16, batch_size=4, seed=3)
KILLED = 3  # the exit status of a rank the test kills


def _run(data: Path):
    from domainspec.eval.generate import benchmark_run
    return benchmark_run("gsm8k", "tiny", SAMPLING, data=str(data), style="base")


def _worker(argv: list[str]) -> int:
    """One rank: sample DATA into OUT; ``--exit-after K`` dies (os._exit) once K of its tasks are written."""
    import argparse
    import logging

    from domainspec.eval.generate import generate_samples

    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--exit-after", type=int)
    p.add_argument("--gloo", action="store_true", help="wait at a torch.distributed barrier instead of on files")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[rank {os.environ['RANK']}] %(message)s")
    if args.gloo:
        import torch.distributed as dist
        dist.init_process_group("gloo")
    run = _run(Path(args.data))
    complete = run.complete
    if args.exit_after is not None:
        def complete(tasks, sampling, starts, on_done, inner=run.complete):
            written = []

            def done(i, texts):
                on_done(i, texts)
                written.append(i)
                if len(written) >= args.exit_after:
                    os._exit(KILLED)  # as a SIGKILL would: no cleanup, no flush beyond what was written
            return inner(tasks, sampling, starts, done)
    generate_samples(run.tasks, complete, run.sampling, args.out, run.meta)
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank: int, world: int, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    return {**env, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port), "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def _ranks(data: Path, out: Path, ranks: list[int], *extra: str, world: int = 2) -> list[tuple[int, str]]:
    """Start the given ranks of a ``world``-rank run together; (exit status, log) of each."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, str(data), str(out), *extra], env=_env(r, world, port),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in ranks]
    return [(p.wait(timeout=120), p.stdout.read()) for p in procs]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gsm8k") / "test.jsonl"
    pairs = [(3, 4), (12, 7), (5, 5), (20, 1), (8, 9), (2, 30)]
    rows = [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have now?",
             "answer": f"{a} + {b} = {a + b}\n#### {a + b}"} for a, b in pairs]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> tuple[object, bytes]:
    """The benchmark run (model loaded once) and the samples file one process writes."""
    from domainspec.eval.generate import Shard, generate_samples
    run = _run(data)
    out = tmp_path_factory.mktemp("one") / "samples.jsonl"
    rows = generate_samples(run.tasks, run.complete, run.sampling, out, run.meta, shard=Shard())
    assert len(rows) == 12 and [r["task_id"] for r in rows[::2]] == [t.task_id for t in run.tasks]
    return run, out.read_bytes()


@pytest.fixture(autouse=True)
def _one_process(monkeypatch):
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    # a process group another test left initialized in this pytest process (world size 1) would
    # outrank the RANK/WORLD_SIZE these tests set
    monkeypatch.setattr("domainspec.eval.generate._process_group", lambda: None)


def test_killed_rank_resumes_and_the_merge_is_byte_identical(data, reference, tmp_path, monkeypatch):
    from domainspec.eval.generate import generate_samples
    run, one = reference
    out = tmp_path / "samples.jsonl"
    shard0, shard1 = tmp_path / "samples.rank0-of-2.jsonl", tmp_path / "samples.rank1-of-2.jsonl"
    # rank 1 (tasks 1, 3, 5) dies after writing its first task
    [(rc, log)] = _ranks(data, out, [1], "--exit-after", "1")
    assert rc == KILLED, log
    assert len(shard1.read_text().splitlines()) == 2 and not out.exists()
    # rank 0 samples its share, then finds rank 1's shard incomplete: an error naming it, nothing merged
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RuntimeError, match=r"rank 1's shard .*samples\.rank1-of-2\.jsonl lacks 4 of its samples"):
        generate_samples(run.tasks, run.complete, run.sampling, out, run.meta, wait_s=1)
    assert len(shard0.read_text().splitlines()) == 6 and not out.exists()
    # rerun both ranks (a gloo barrier this time): each resumes from its shard, rank 0 merges
    (rc0, log0), (rc1, log1) = _ranks(data, out, [0, 1], "--gloo")
    assert rc0 == rc1 == 0, log0 + log1
    assert "6 already in" in log0 and "2 already in" in log1 and "4 to generate" in log1
    assert out.read_bytes() == one
    assert not shard0.exists() and not shard1.exists()
    # the merged file is complete: a rank returns its rows without sampling, splitting or waiting
    rows = generate_samples(run.tasks, run.complete, run.sampling, out, run.meta, wait_s=0)
    assert [json.dumps(r) for r in rows] == [json.dumps(json.loads(x)) for x in one.decode().splitlines()]
    assert out.read_bytes() == one


def test_missing_shard_names_the_rank(reference, tmp_path, monkeypatch):
    from domainspec.eval.generate import generate_samples
    run, _ = reference
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(RuntimeError, match=r"rank 1's shard \S+rank1-of-3.jsonl does not exist; "
                                           r"rank 2's shard \S+rank2-of-3.jsonl does not exist"):
        generate_samples(run.tasks[:3], run.complete, run.sampling, tmp_path / "s.jsonl", run.meta, wait_s=0.5)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"RANK='2' WORLD_SIZE='2': the rank must be in \[0, WORLD_SIZE\)"):
        generate_samples(run.tasks, run.complete, run.sampling, tmp_path / "s.jsonl", run.meta)


def test_eval_stage_under_torchrun_samples_data_parallel(data, reference, tmp_path):
    from pipeline_helpers import one_stage_pipeline

    from domainspec.common.cli import main
    from domainspec.common.pipeline.markers import read_done
    _, one = reference
    f, stage = one_stage_pipeline(tmp_path, "eval", {
        "benchmark": "gsm8k", "model": "tiny", "data": str(data), "style": "base", "ks": [1, 2],
        "sampling": SAMPLING.to_dict()},
        launcher={"kind": "torchrun", "nproc_per_node": 2, "cpu": True, "master_port": _free_port()})
    assert main(["run", str(f)]) == 0, (stage / "launcher.log").read_text()[-3000:]
    assert (stage / "samples.jsonl").read_bytes() == one  # file-based wait: no process group in the stage
    summary = json.loads((stage / "summary.json").read_text())
    assert summary["num_tasks"] == 6 and summary["num_samples"] == 12
    # grading was split by task across the ranks (3 tasks x 2 samples each), and it scores what one process does
    assert summary["ranks"] == {"world": 2, "samples_per_rank": [6, 6]}
    from domainspec.eval.scoring import score_samples
    alone = score_samples(reference[0].bench, reference[0].tasks, [json.loads(x) for x in one.decode().splitlines()],
                          ks=[1, 2])
    assert summary["metrics"] == alone.summary["metrics"] and "ranks" not in alone.summary
    results = [json.loads(x) for x in (stage / "results.jsonl").read_text().splitlines()]
    assert [(r["task_id"], r["passed"], r["extracted"]) for r in results] == [
        (r.task_id, r.passed, r.extracted) for r in alone.results]
    marker = read_done(stage)
    assert marker.info["launcher"] == "torchrun" and marker.info["world_size"] == 2
    assert marker.result["figures"]["num_samples"] == 12  # rank 0's result, after scoring
    assert not list(stage.glob("samples.rank*"))


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
