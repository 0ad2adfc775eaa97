"""How sure a score is, and whether two runs differ: standard errors, bootstrap intervals, run comparison.

Usage::

    per_task = {"pass@1": [1.0, 0.5, 0.0], "maj@4": [1.0, 1.0, 0.0]}   # one value per task
    uncertainty(per_task)          # {"pass@1": {"mean", "stderr", "ci95": [lo, hi], "tasks"}, ...}
    compare(summary_a, summary_b, results_a, results_b)   # rows: metric, a, b, b - a, ci95 of b - a

A benchmark score is a mean over tasks of a per-task value (pass@k's unbiased estimate, the
task's accuracy, whether its majority answer was right). Its standard error is the sample
standard deviation of those values over sqrt(number of tasks) (ddof 1, as lm-evaluation-harness
reports ``stderr``); the 95% interval is a percentile bootstrap over tasks (1000 resamples, seed 0,
so the same results give the same interval). Two runs are compared task by task when both have
results for the same tasks (a paired bootstrap of the difference), else by their standard errors
(``1.96 * sqrt(se_a^2 + se_b^2)``). Nothing here executes or grades.
"""
from __future__ import annotations

import math
import random
from typing import Mapping, Sequence

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0


def stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean of ``values`` (sample std, ddof 1); None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def bootstrap_ci(values: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95% percentile-bootstrap interval of the mean of ``values``; None for no values."""
    n = len(values)
    if not n:
        return None
    rng = random.Random(seed)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return [means[int(0.025 * (resamples - 1))], means[int(0.975 * (resamples - 1))]]


def uncertainty(per_task: Mapping[str, Sequence[float]]) -> dict[str, dict]:
    """For each metric's per-task values: mean, standard error, bootstrap 95% interval, task count."""
    return {name: {"mean": sum(v) / len(v), "stderr": stderr(v), "ci95": bootstrap_ci(v), "tasks": len(v)}
            for name, v in per_task.items() if len(v)}


def compare(a: dict, b: dict, per_task_a: Mapping[str, Mapping[str, float]] | None = None,
            per_task_b: Mapping[str, Mapping[str, float]] | None = None) -> list[dict]:
    """One row per metric in both summaries: a, b, the difference b - a and its 95% interval.

    ``per_task_x``: metric -> task id -> value (from results files); with both, the interval is
    a paired bootstrap over the tasks the runs share, else it comes from the summaries' stderrs.
    ``same`` is True when the difference is exactly 0 on identical per-task values (or means)."""
    rows = []
    ua, ub = a.get("uncertainty", {}), b.get("uncertainty", {})
    for name in [m for m in a.get("metrics", {}) if m in b.get("metrics", {})]:
        va, vb = a["metrics"][name], b["metrics"][name]
        row = {"metric": name, "a": va, "b": vb, "diff": vb - va, "ci95": None, "paired_tasks": 0}
        ta, tb = (per_task_a or {}).get(name), (per_task_b or {}).get(name)
        if ta and tb:
            shared = sorted(set(ta) & set(tb))
            diffs = [tb[t] - ta[t] for t in shared]
            row.update(paired_tasks=len(shared), ci95=bootstrap_ci(diffs) if shared else None,
                       same=all(d == 0 for d in diffs) and len(shared) == len(ta) == len(tb))
        else:
            sa, sb = (ua.get(name) or {}).get("stderr"), (ub.get(name) or {}).get("stderr")
            if sa is not None and sb is not None:
                half = 1.96 * math.sqrt(sa ** 2 + sb ** 2)
                row["ci95"] = [row["diff"] - half, row["diff"] + half]
            row["same"] = va == vb
        lo_hi = row["ci95"]
        row["significant"] = bool(lo_hi) and (lo_hi[0] > 0 or lo_hi[1] < 0)
        rows.append(row)
    return rows


SETTINGS_KEYS = ("benchmark", "benchmark_version", "protocol", "grader", "sampling", "settings")


def setting_differences(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """The recorded settings (seed, backend, batch size, sampling, protocol, grader version...) that differ."""
    out = []

    def walk(prefix, x, y):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(f"{prefix}.{k}" if prefix else k, x.get(k), y.get(k))
        elif x != y:
            out.append((prefix, x, y))

    for key in SETTINGS_KEYS:
        walk(key, a.get(key), b.get(key))
    return [d for d in out if not d[0].endswith(("samples", "samples_sha256"))]
