"""Write a scoring run's artifacts: results.jsonl, summary.json, report.md (+ a PNG for breakdowns).

Usage::

    write_outputs(scored, "out/")    # scored = domainspec.eval.scoring.Scored

report.md holds the same numbers as summary.json, readable: metrics, the
protocol that produced the samples, grader or sandbox level, status counts and,
for MATH, pass@1 by subject and by level (also plotted to breakdown.png when
matplotlib is available), for HumanEval+/MBPP+ base and plus pass@k side by side.
This module computes nothing new.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _fmt(x) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def render_report(summary: dict, plot_name: str | None = None) -> str:
    s = summary
    lines = [f"# {s['benchmark']} — evaluation report", "",
             f"- benchmark version: `{s.get('benchmark_version')}`",
             f"- protocol: {s.get('protocol')}",
             f"- tasks: {s['num_tasks']}, samples: {s['num_samples']} "
             f"(per task: {s['samples_per_task']['min']}–{s['samples_per_task']['max']})"]
    if "grader" in s:
        g = s["grader"]
        lines.append(f"- grader: `{g['mode']}` (version {g['version']}"
                     + (f", data set `{g['dataset']}`" if g.get("dataset") else "")
                     + (", `$` before a number read as currency" if g.get("currency") else "") + ")")
    if "sandbox" in s:
        sb = s["sandbox"]
        limits = list((sb.get("time_limits_s") or {}).values())
        if sb.get("time_limit") == "calibrated" and limits:
            timeout = (f"time limits calibrated on the reference solutions: {min(limits):g}-{max(limits):g} s "
                       f"({sb.get('limit_factor')}x the reference, at least {sb.get('limit_floor_s')} s)")
        elif sb.get("time_limit") == "per-input" and limits:
            timeout = (f"time limit per input {sb.get('limit_factor')}x the canonical solution's time on it, at least "
                       f"{sb.get('limit_floor_s')} s; per program {min(limits):g}-{max(limits):g} s")
        else:
            timeout = f"timeout {sb.get('timeout_s')} s"
        lines.append(f"- sandbox level: **{sb.get('level')}** ({timeout}, "
                     f"memory {sb.get('memory_mb')} MiB, workers {sb.get('workers')})")
    refs = (s.get("sandbox") or {}).get("reference_outputs")
    if refs:
        lines.append(f"- expected outputs: the canonical solutions' ({refs['computed']} tasks computed, "
                     f"{refs['cached']} from the cache in `{refs['cache_dir']}`; runner `{refs['runner']}`)")
    if s.get("tasks_without_samples"):
        lines.append(f"- **{s['tasks_without_samples']} tasks had no samples and are not in the metrics**")
    lines += ["", "## Metrics", "", "| metric | value | stderr | 95% interval (bootstrap over tasks) |",
              "|---|---|---|---|"]
    unc = s.get("uncertainty", {})
    for k, v in s["metrics"].items():
        u = unc.get(k) or {}
        ci = u.get("ci95")
        lines.append(f"| {k} | {_fmt(v)} | {_fmt(u['stderr']) if u.get('stderr') is not None else '-'} | "
                     f"{f'{_fmt(ci[0])} - {_fmt(ci[1])}' if ci else '-'} |")
    for k, why in s.get("skipped_metrics", {}).items():
        lines.append(f"| {k} | not computed: {why} | | |")
    lines += _base_and_plus(s)
    lines += ["", "## Sample status", "", "| status | samples |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(s.get("status_counts", {}).items())]
    for key, groups in s.get("breakdown", {}).items():
        lines += ["", f"## pass@1 by {key}", "", f"| {key} | tasks | pass@1 |", "|---|---|---|"]
        lines += [f"| {v} | {g['tasks']} | {g['pass@1']:.4f} |" for v, g in groups.items()]
    if plot_name:
        lines += ["", f"![pass@1 breakdown]({plot_name})"]
    if s.get("settings"):
        lines += ["", "## Settings", "", "```json", json.dumps(s["settings"], indent=2), "```"]
    lines += ["", f"Scored in {s.get('duration_s')} s.", ""]
    return "\n".join(lines)


def _base_and_plus(s: dict) -> list[str]:
    """HumanEval+/MBPP+: pass@k on the base tests and on base + plus tests, side by side."""
    m, unc = s["metrics"], s.get("uncertainty", {})
    ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("base_pass@") and f"pass@{k.split('@')[1]}" in m)
    if not ks:
        return []

    def cell(name):
        se = (unc.get(name) or {}).get("stderr")
        return f"{_fmt(m[name])}" + (f" ± {_fmt(se)}" if se is not None else "")

    out = ["", "## Base and plus tests", "",
           "pass@k on the original tests' inputs (base) and on base + EvalPlus's extra inputs (plus; "
           "the benchmark's score), ± standard error:", "", "| k | base | base + plus |", "|---|---|---|"]
    out += [f"| {k} | {cell(f'base_pass@{k}')} | {cell(f'pass@{k}')} |" for k in ks]
    return out


def plot_breakdown(summary: dict, path: Path) -> bool:
    """Bar charts of pass@1 per breakdown key; False when there is nothing to plot or no matplotlib."""
    breakdown = summary.get("breakdown") or {}
    if not breakdown:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib not installed: report without plot")
        return False
    fig, axes = plt.subplots(1, len(breakdown), figsize=(6 * len(breakdown), 4), squeeze=False)
    for ax, (key, groups) in zip(axes[0], breakdown.items()):
        names = list(groups)
        ax.bar(range(len(names)), [groups[n]["pass@1"] for n in names], color="#4878a8")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{summary['benchmark']} pass@1 by {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_outputs(scored, out_dir: str | Path) -> Path:
    """results.jsonl, summary.json, per_task.json and report.md (and breakdown.png) in ``out_dir``; returns it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w", encoding="utf-8") as fh:
        for r in scored.results:
            fh.write(json.dumps(r.to_row(), ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(scored.summary, indent=2, ensure_ascii=False) + "\n")
    if getattr(scored, "per_task", None):  # each metric's per-task values: `eval compare` pairs runs on them
        (out / "per_task.json").write_text(json.dumps(scored.per_task, ensure_ascii=False) + "\n")
    plot = "breakdown.png" if plot_breakdown(scored.summary, out / "breakdown.png") else None
    (out / "report.md").write_text(render_report(scored.summary, plot))
    return out
