"""The evaluate metric modules load from their local folders with no hub access and compute real numbers."""
import os
import subprocess
import sys
from pathlib import Path

import domainspec.eval

METRICS = Path(domainspec.eval.__file__).resolve().parent / "metrics"

SCRIPT = f"""
import evaluate
pk = evaluate.load({str(METRICS / "pass_at_k")!r})
print(pk.compute(predictions=[[True, False, False], [False, False, False]], k=[1, 2, 4]))
ma = evaluate.load({str(METRICS / "math_accuracy")!r})
print(ma.compute(predictions=["so the answer is \\\\boxed{{\\\\frac{{1}}{{2}}}}", "#### 7", "I do not know"],
                 references=["0.5", "8", "3"]))
"""


def test_metrics_load_offline(tmp_path):
    # a fresh process: HF_HUB_OFFLINE must be set before huggingface_hub is imported
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    # pass@1 = (1/3 + 0)/2; pass@2 = (1 - C(2,2)/C(3,2))/2 = (2/3)/2; k=4 > n=3: left out
    pk = eval(lines[-2])
    assert set(pk) == {"pass@1", "pass@2"}
    assert abs(pk["pass@1"] - 1 / 6) < 1e-12 and abs(pk["pass@2"] - 1 / 3) < 1e-12
    assert eval(lines[-1]) == {"accuracy": 1 / 3}
