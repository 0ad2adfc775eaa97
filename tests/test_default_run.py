"""The product's main job, for real (``pytest -m slow tests/test_default_run.py``).

`domainspec run pipelines.yaml` with no other argument, in a fresh workdir: both pipelines end to
end on the CPU within a 20-minute guard, a report whose numbers come from the stages' own
artifacts; the second run skips every stage in seconds; one SFT stage's LR changed re-runs that
stage and what follows it, nothing before.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(workdir: Path, *extra: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "domainspec.common.cli", "run", "pipelines.yaml",
                           "--workdir", str(workdir), *extra], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return time.perf_counter() - t0


def test_default_run_end_to_end_skip_and_rerun(tmp_path):
    wd = tmp_path / "runs"
    first = _run(wd)
    print(f"default run: {first:.0f} s")
    # a regression guard, not the product's target: issue 14 asks for 600 s; measured 939 s (2026-12-02) and
    # 1008 s (2026-12-03, a slower day) on 2 cores with GRPO and DPO in the default pipelines (README, "Not
    # done yet")
    assert first <= 20 * 60, f"the default run took {first:.0f} s (bound: 1200 s)"
    report = json.loads((wd / "report.json").read_text())
    md = (wd / "report.md").read_text()
    assert set(report["pipelines"]) == {"coder", "math"}
    # the report's figures are the stages' own: HumanEval pass@1 from the eval stage's summary,
    # the held-out accuracy per round from the math loop's summary
    he = json.loads((wd / "coder" / "humaneval" / "score" / "summary.json").read_text())
    assert he["benchmark"] == "humaneval" and he["num_tasks"] == 164
    assert report["pipelines"]["coder"]["humaneval"]["metrics"]["pass@1"] == he["metrics"]["pass@1"]
    loop = json.loads((wd / "math" / "loop" / "summary.json").read_text())
    assert [r["round"] for r in loop["rounds"]] == [0, 1, 2]
    assert report["pipelines"]["math"]["loop"]["metrics"]["table"] == loop["table"]
    assert "coder/humaneval" in md and "math/loop" in md
    assert any(p.suffix == ".png" for p in (wd / "report_plots").iterdir())

    second = _run(wd)
    print(f"second run: {second:.0f} s")
    assert second <= 60, f"the second run took {second:.0f} s; every stage should be skipped"
    markers = {str(p.parent.relative_to(wd)): p.stat().st_mtime for p in wd.glob("*/*/.done.json")}

    _run(wd, "--set", "coder.sft.stages.1.train.lr=5e-4")
    after = {str(p.parent.relative_to(wd)): p.stat().st_mtime for p in wd.glob("*/*/.done.json")}
    rerun = {name for name in markers if after[name] != markers[name]}
    assert rerun == {"coder/sft", "coder/dpo", "coder/humaneval", "coder/mbpp"} & set(markers), rerun
