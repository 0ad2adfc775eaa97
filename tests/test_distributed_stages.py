"""coder_sft, rm, reject_sample and math_loop under a launcher: 2 CPU ranks (gloo) against 1 process.

* plan: those stages take ``launcher:``; ``--dry-run`` prints each one's launch command (also for the
  real-scale coder-7b / math-7b pipelines); a stage that cannot take one is refused naming its YAML line;
  a rank that fails stops the stage with its own error first in the stage's error;
* RM training and Coder multi-stage SFT through ``domainspec run`` with ``torchrun`` x 2 give the loss
  trajectory of the local run (stated tolerance: per-step loss within rel 1e-5; measured <= 5e-7),
  the same held-out RM accuracy (split scoring) and pass rates;
* one math-loop round under torchrun x 2 gives the same graded samples and an SFT loss within the
  same tolerance; a SIGKILL of one rank in the middle of the round stops the job with that rank's
  death in the log, and the rerun resumes from the finished steps and ends with the same round.

Run as a script, this file is one rank of a math-loop run with the scripted solver of
``test_math_problem_sources`` (``python -m torch.distributed.run ... tests/test_distributed_stages.py loop ...``).
"""
from __future__ import annotations

import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pipeline_helpers import one_stage_pipeline  # noqa: E402

from domainspec.common.cli import main  # noqa: E402
from domainspec.common.config import ConfigError  # noqa: E402

LOSS_RTOL = 1e-5
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(port: int | None = None) -> dict:
    return {"kind": "torchrun", "nproc_per_node": 2, "cpu": True, "master_port": port or _free_port()}


def _losses(path: Path) -> list[float]:
    return [json.loads(x)["loss"] for x in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # a process group of one that an earlier in-process training left behind sets these; ranks get their own
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)


# ---------------------------------------------------------------- plan


@pytest.mark.parametrize("stage_type, config", [
    ("coder_sft", {"stages": [{"name": "a", "data": [{"path": "builtin:toy_code_train"}]}]}),
    ("rm", {"groups": "g.jsonl", "init_from": "tiny"}),
    ("reject_sample", {"problems": "p.jsonl"}),
    ("math_loop", {}),
])
def test_stages_take_a_launcher_and_dry_run_prints_the_command(tmp_path, capsys, stage_type, config):
    f, stage = one_stage_pipeline(tmp_path, stage_type, config, launcher=_torchrun(29611))
    assert main(["run", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{stage_type} ({stage_type}) [torchrun x2]" in out
    assert ("launch: " + sys.executable + " -m torch.distributed.run --nproc_per_node 2 --nnodes 1 --master_port 29611 "
            f"-m domainspec.common.pipeline.stage_exec --spec {stage / 'stage_spec.json'}") in out


def test_a_stage_that_cannot_take_a_launcher_names_its_yaml_line(tmp_path):
    from domainspec.common.pipeline.plan import load_plan
    f, _ = one_stage_pipeline(tmp_path, "math_eval", {"problems": "p.jsonl"}, launcher=_torchrun())
    with pytest.raises(ConfigError, match=r"pipe.yaml:\d+: pipelines.p.stages.math_eval.launcher: stage type "
                                          r"'math_eval' is not a training stage.*math_loop, reject_sample, rm"):
        load_plan(f)


@pytest.mark.parametrize("pipeline", ["coder-7b", "math-7b"])
def test_real_scale_pipelines_validate_with_launch_commands(pipeline, capsys, tmp_path):
    assert main(["run", str(ROOT / "pipelines.yaml"), "--pipeline", pipeline, "--dry-run",
                 "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    stages = [line for line in out.splitlines() if line.startswith("    run ")]
    launches = [line for line in out.splitlines() if line.strip().startswith("launch: ")]
    heavy = [s for s in stages if "(cpt_data)" not in s]  # data preparation runs where the runner runs
    assert heavy and len(launches) == len(heavy) and all("[slurm x16]" in s or "[slurm x8]" in s for s in heavy)
    assert all("sbatch --wait" in x and "torchrun" in x for x in launches)


def _ranks_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    from domainspec.common.pipeline import ranks
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    got = {"rank_world": ranks.rank_world(),
           "split": ranks.split_map(list(range(7)), lambda part: [(x, ranks.rank_world()[0]) for x in part]),
           "shared": ranks.on_rank0(lambda: {"from": ranks.rank_world()[0]})}
    try:
        ranks.on_rank0(lambda: 1 / 0)
    except BaseException as e:  # rank 0: the ZeroDivisionError itself; the others: rank 0's error, named
        got["error"] = f"{type(e).__name__}: {e}"
    Path(out, f"rank{rank}.json").write_text(json.dumps(got))
    dist.barrier()
    # gloo's threads still running at interpreter exit abort the process now and then ("terminate called
    # without an active exception", SIGABRT): tear the group down first
    dist.destroy_process_group()


def test_ranks_share_rank0_work_and_split_items(tmp_path):
    import torch.multiprocessing as mp
    mp.spawn(_ranks_worker, args=(2, f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["rank_world"] == [0, 2] and r1["rank_world"] == [1, 2]
    # every rank holds every result, in item order; item i was computed on rank i % 2
    assert r0["split"] == r1["split"] == [[i, i % 2] for i in range(7)]
    assert r0["shared"] == r1["shared"] == {"from": 0}
    assert r0["error"] == "ZeroDivisionError: division by zero"
    assert r1["error"] == "RuntimeError: rank 0 failed: ZeroDivisionError: division by zero"


def test_a_failing_rank_stops_the_stage_with_its_error(tmp_path):
    bad = tmp_path / "groups.jsonl"
    bad.write_text(json.dumps({"question": "q", "responses": ["a"]}) + "\n")  # no labels
    f, stage = one_stage_pipeline(tmp_path, "rm", {"groups": str(bad), "init_from": "tiny"}, launcher=_torchrun())
    assert main(["run", str(f)]) == 1
    err = (stage / "error.log").read_text()
    assert "launcher 'torchrun' exited with 1; failed rank(s):" in err
    # every rank fails here, and the launcher stops the others once one is down: the rank that failed first
    # may have the only error file (rank 1 did in one CI run: rank 0 was SIGTERMed before writing its own)
    m = re.search(rf"rank ([01]): ValueError: {re.escape(str(bad))}:1: RM group row lacks \['labels'\]", err)
    assert m, err[-3000:]
    assert f"[rank {m[1]}] ERROR __main__: rank {m[1]} failed" in (stage / "launcher.log").read_text()


# ---------------------------------------------------------------- RM and Coder SFT: 2 ranks vs 1 process


def _groups(path: Path) -> Path:
    rows = []
    for i in range(12):
        a, b = 2 + i, 3 + 2 * i
        q = f"What is {a} + {b}?"
        rows.append({"question": q, "responses": [f"{a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}",
                                                  f"{a} + {b} = {a + b + 1}. The answer is \\boxed{{{a + b + 1}}}",
                                                  f"I think it is \\boxed{{{a * b}}}"],
                     "labels": [True, False, False]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run_stage(tmp_path: Path, stage_type: str, config: dict, launcher: dict | None) -> Path:
    """``domainspec run`` of a one-stage pipeline in a fresh process, as the ranks are (a reward model's new
    head is initialized from torch's RNG as a fresh process has it)."""
    tmp_path.mkdir(parents=True)
    f, stage = one_stage_pipeline(tmp_path, stage_type, config, launcher=launcher)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                            "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    r = subprocess.run([sys.executable, "-m", "domainspec.common.cli", "run", str(f)], env=env, cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    log = stage / "launcher.log"
    assert r.returncode == 0, (r.stderr[-3000:] + (log.read_text()[-4000:] if log.exists() else ""))
    return stage


@pytest.mark.slow
def test_rm_training_on_two_ranks_matches_one_process(tmp_path):
    from domainspec.common.models.loading import tiny_model_path
    config = {"groups": str(_groups(tmp_path / "groups.jsonl")), "init_from": str(tiny_model_path()),
              "reward_model": {"loss": "pairwise", "max_length": 64, "heldout_fraction": 0.25, "score_batch_size": 4,
                               "train": {"lr": 1e-3, "max_steps": 4, "global_batch_size": 4, "micro_batch_size": 1,
                                         "log_every": 1, "save_every": 0, "progress": False}}}
    one = _run_stage(tmp_path / "one", "rm", config, None)
    two = _run_stage(tmp_path / "two", "rm", config, _torchrun())
    a, b = _losses(one / "metrics.jsonl"), _losses(two / "metrics.jsonl")
    assert len(a) == len(b) == 4 and a[-1] != a[0]
    assert b == pytest.approx(a, rel=LOSS_RTOL)
    ev1, ev2 = (json.loads((s / "rm_eval.json").read_text()) for s in (one, two))
    assert ev1["num_pairs"] == ev2["num_pairs"] > 0 and ev2["pairwise_accuracy"] == ev1["pairwise_accuracy"]
    assert "world size 2" in (two / "launcher.log").read_text()


@pytest.mark.slow
def test_coder_sft_on_two_ranks_matches_one_process(tmp_path):
    from domainspec.common.config import apply_overrides, load_yaml
    from test_coder_sft import fast_overrides
    from domainspec.coder.sft import DEFAULT_CONFIG
    data, _ = load_yaml(DEFAULT_CONFIG)
    apply_overrides(data, fast_overrides([f"stages.{i}.train.{k}" for i in (0, 1)
                                          for k in ("micro_batch_size=2", "log_every=1", "save_every=0")]
                                         + ["eval_base=false"]))
    one = _run_stage(tmp_path / "one", "coder_sft", data, None)
    two = _run_stage(tmp_path / "two", "coder_sft", data, _torchrun())
    for stage in ("1_broad", "2_exec_checked"):
        a, b = _losses(one / stage / "metrics.jsonl"), _losses(two / stage / "metrics.jsonl")
        assert len(a) == len(b) == 2
        assert b == pytest.approx(a, rel=LOSS_RTOL), stage
    s1, s2 = (json.loads((s / "summary.json").read_text()) for s in (one, two))
    toy = [s["stages"][-1]["eval"]["toy"] for s in (s1, s2)]
    assert toy[0]["num_samples"] == toy[1]["num_samples"] == 4 and toy[0]["metrics"] == toy[1]["metrics"]
    assert "world size 2" in (two / "launcher.log").read_text()


# ---------------------------------------------------------------- one math-loop round: 2 ranks vs 1, kill, resume


def _loop_overrides(files: dict) -> list[str]:
    from test_math_loop import MICRO
    return MICRO + [
        "rounds=1", "eval.modes=[cot]", "problems.seed_problems=10", "problems.round_problems=5",
        "problems.heldout_problems=4", f"problems.seed_source.path={files['train']}",
        f"problems.round_source.path={files['rounds']}",
        f"problems.heldout_source={{benchmark: gsm8k, path: {files['test']}}}",
        # 2 ranks split the global batch: 2 rows per rank and step
        "initial_sft.train.micro_batch_size=2", "round_sft.train.micro_batch_size=2",
        "reward_model.train.micro_batch_size=2", "initial_sft.train.log_every=1", "round_sft.train.log_every=1"]


def _worker(argv: list[str]) -> int:
    """One rank of a math loop with the scripted solver; ``--die-at-rm R``: rank R SIGKILLs itself when the
    reward model starts training."""
    import argparse
    import logging

    import domainspec.math.loop as loop_mod
    import domainspec.math.reward_model as rm_mod
    from domainspec.common.config import load_config
    from test_math_loop import DEFAULT
    from test_math_problem_sources import Solver
    p = argparse.ArgumentParser()
    p.add_argument("files")
    p.add_argument("answers")
    p.add_argument("out")
    p.add_argument("--die-at-rm", type=int)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"[rank {os.environ.get('RANK')}] %(name)s: %(message)s")
    answers = json.loads(Path(args.answers).read_text())
    loop_mod._backend = lambda path, sampling=None: Solver(answers)
    if args.die_at_rm is not None and int(os.environ["RANK"]) == args.die_at_rm:
        def die(*a, **k):
            os.kill(os.getpid(), signal.SIGKILL)
        rm_mod.train_reward_model = die
    cfg = load_config(loop_mod.MathLoopConfig, DEFAULT, _loop_overrides(json.loads(Path(args.files).read_text())))
    loop_mod.run_loop(cfg, args.out)
    return 0


def _two_rank_loop(files_json: Path, answers_json: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR",
                                                            "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           __file__, "loop", str(files_json), str(answers_json), str(out), *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def _graded(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "round_1" / "samples.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_math_loop_round_on_two_ranks_matches_one_process_and_resumes_after_a_kill(tmp_path, monkeypatch):
    import domainspec.math.loop as loop_mod
    from domainspec.common.config import load_config
    from test_math_loop import DEFAULT
    from test_math_problem_sources import Solver, _gsm8k, _problem
    paths = {}
    for name, idx in (("train", range(12)), ("test", range(40, 44)), ("rounds", range(20, 26))):
        paths[name] = tmp_path / f"{name}.jsonl"
        rows = [_gsm8k(q, "Add them.", a) if name != "rounds" else {"question": q, "answer": str(a)}
                for q, a in map(_problem, idx)]
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = {q: str(a) for q, a in map(_problem, list(range(12)) + list(range(20, 26)) + list(range(40, 44)))}
    files_json, answers_json = tmp_path / "files.json", tmp_path / "answers.json"
    files_json.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    answers_json.write_text(json.dumps(answers))

    monkeypatch.setattr(loop_mod, "_backend", lambda path, sampling=None: Solver(answers))
    one = tmp_path / "one"
    loop_mod.run_loop(load_config(loop_mod.MathLoopConfig, DEFAULT, _loop_overrides(paths)), one)
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)

    two = tmp_path / "two"
    r = _two_rank_loop(files_json, answers_json, two)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert _graded(two) == _graded(one)
    for sub in ("round_0/sft", "round_1/sft", "round_1/rm"):
        assert _losses(two / sub / "metrics.jsonl") == pytest.approx(_losses(one / sub / "metrics.jsonl"),
                                                                      rel=LOSS_RTOL), sub
    assert (two / "round_1" / "rs" / "sft.jsonl").read_text().count("\n") == \
        (one / "round_1" / "rs" / "sft.jsonl").read_text().count("\n")
    t1, t2 = (json.loads((d / "summary.json").read_text())["table"] for d in (one, two))
    assert [x["pass@1"] for x in t2] == [x["pass@1"] for x in t1]

    killed = tmp_path / "killed"
    r = _two_rank_loop(files_json, answers_json, killed, "--die-at-rm", "1")
    assert r.returncode != 0 and "SIGKILL" in r.stdout + r.stderr, r.stderr[-3000:]
    assert (killed / "round_1" / "samples.jsonl").is_file() and not (killed / "round_1" / "round.json").exists()
    samples_mtime = (killed / "round_1" / "samples.jsonl").stat().st_mtime_ns
    r = _two_rank_loop(files_json, answers_json, killed)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "round 0 already done, skipped" in r.stdout + r.stderr
    assert (killed / "round_1" / "samples.jsonl").stat().st_mtime_ns == samples_mtime  # not sampled again
    assert _graded(killed) == _graded(one)
    assert _losses(killed / "round_1" / "sft" / "metrics.jsonl") == pytest.approx(
        _losses(one / "round_1" / "sft" / "metrics.jsonl"), rel=LOSS_RTOL)


if __name__ == "__main__":
    if sys.argv[1:2] == ["loop"]:
        raise SystemExit(_worker(sys.argv[2:]))
    raise SystemExit(f"usage: {sys.argv[0]} loop FILES_JSON ANSWERS_JSON OUT [--die-at-rm RANK]")
