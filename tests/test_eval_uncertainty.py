"""Variance in every score (standard errors, bootstrap intervals, avg@n) and `eval compare`."""
import json
import math
import shutil

import pytest

from domainspec.common.cli import main
from domainspec.eval.uncertainty import bootstrap_ci, compare, stderr

# four problems with gold 1..4 and 4 samples each: 2, 0, 4 and 3 right
GOLDS = {str(i): str(i) for i in range(1, 5)}
RIGHT = {"1": 2, "2": 0, "3": 4, "4": 3}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, name, right=RIGHT):
    data = _write(tmp_path / "d.jsonl", [{"unique_id": t, "problem": f"p{t}", "answer": g} for t, g in GOLDS.items()])
    samples = _write(tmp_path / f"{name}.jsonl", [
        {"task_id": t, "completion": f"\\boxed{{{GOLDS[t] if i < right[t] else 99}}}"} for t in GOLDS for i in range(4)])
    out = tmp_path / name
    assert main(["eval", "score", "--benchmark", "math", "--samples", str(samples), "--data", str(data),
                 "--k", "1,2", "--out", str(out)]) == 0
    return out


def test_stderr_against_a_hand_computed_value():
    # mean 0.5, sample variance (4 * 0.25) / 3 = 1/3, stderr sqrt(1/3 / 4)
    assert stderr([1.0, 0.0, 0.0, 1.0]) == pytest.approx(math.sqrt(1 / 12))
    assert stderr([0.7]) is None
    assert bootstrap_ci([1.0, 0.0, 0.0, 1.0]) == bootstrap_ci([1.0, 0.0, 0.0, 1.0])  # seeded
    lo, hi = bootstrap_ci([1.0, 0.0, 0.0, 1.0])
    assert 0.0 <= lo < 0.5 < hi <= 1.0
    assert bootstrap_ci([0.25] * 10) == [0.25, 0.25]


def test_summary_reports_avg_at_n_and_stderrs(tmp_path):
    out = _run(tmp_path, "a")
    s = json.loads((out / "summary.json").read_text())
    per_task_pass1 = [2 / 4, 0.0, 1.0, 3 / 4]
    assert s["metrics"]["pass@1"] == pytest.approx(sum(per_task_pass1) / 4)
    assert s["metrics"]["avg@4"] == pytest.approx(9 / 16)
    u = s["uncertainty"]["pass@1"]
    mean = 9 / 16
    hand = math.sqrt(sum((v - mean) ** 2 for v in per_task_pass1) / 3 / 4)
    assert u["stderr"] == pytest.approx(hand) and u["tasks"] == 4 and len(u["ci95"]) == 2
    # pass@2 per task: 1 - C(n-c, 2) / C(n, 2) = 5/6, 0, 1, 1
    assert s["uncertainty"]["pass@2"]["mean"] == pytest.approx((5 / 6 + 0 + 1 + 1) / 4)
    assert set(s["uncertainty"]) >= {"pass@1", "pass@2", "accuracy", "maj@4", "avg@4"}
    per_task = json.loads((out / "per_task.json").read_text())
    assert per_task["pass@1"] == {"1": 0.5, "2": 0.0, "3": 1.0, "4": 0.75}
    assert "stderr" in (out / "report.md").read_text()


def test_two_summaries_of_the_same_run_compare_as_equal(tmp_path, capsys):
    a = _run(tmp_path, "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    capsys.readouterr()
    assert main(["eval", "compare", str(a), str(b), "--out", str(tmp_path / "cmp.json")]) == 0
    printed = capsys.readouterr().out
    assert "settings: identical" in printed and "differs" not in printed
    rows = json.loads((tmp_path / "cmp.json").read_text())["rows"]
    assert rows and all(r["same"] and r["diff"] == 0 and r["ci95"] == [0.0, 0.0] for r in rows)


def test_a_changed_run_shows_the_paired_difference(tmp_path, capsys):
    a = _run(tmp_path, "a")
    b = _run(tmp_path, "b", right={"1": 4, "2": 4, "3": 4, "4": 4})
    assert main(["eval", "compare", str(a), str(b)]) == 0
    printed = capsys.readouterr().out
    assert "paired over 4 tasks" in printed
    row = next(r for r in compare(json.loads((a / "summary.json").read_text()),
                                  json.loads((b / "summary.json").read_text()),
                                  json.loads((a / "per_task.json").read_text()),
                                  json.loads((b / "per_task.json").read_text())) if r["metric"] == "pass@1")
    assert row["diff"] == pytest.approx(1 - 9 / 16) and row["ci95"][0] <= row["diff"] <= row["ci95"][1]
    assert "settings: identical" in printed  # the same settings; only the samples (paths, hashes) differ


def test_compare_without_per_task_values_uses_the_stderrs():
    a = {"metrics": {"pass@1": 0.5}, "uncertainty": {"pass@1": {"stderr": 0.03}}}
    b = {"metrics": {"pass@1": 0.6}, "uncertainty": {"pass@1": {"stderr": 0.04}}}
    (row,) = compare(a, b)
    half = 1.96 * 0.05
    assert row["ci95"] == pytest.approx([0.1 - half, 0.1 + half]) and row["significant"] is True


def test_compare_errors_name_the_path(tmp_path, capsys):
    assert main(["eval", "compare", str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "no summary.json" in capsys.readouterr().err
