"""Top-level run report: ``<workdir>/report.md`` + ``report.json`` + PNG plots.

Built from what the stages left behind (``.done.json`` markers with each
stage's key figures, and every ``metrics.jsonl`` the training loop wrote), so
the numbers in the report are the stages' own. Scalars become a key-figure
list; a list of flat dicts (e.g. one row per self-improvement round) becomes a
table. Also usable by a single stage: :func:`plot_training_curves`.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    continue  # a partly written last line of a killed run
    return rows


def plot_training_curves(metrics_path: Path, out_png: Path, title: str = "") -> Path | None:
    """Loss and LR against step from a metrics.jsonl; None when there is nothing to plot."""
    rows = [r for r in read_jsonl(metrics_path) if "step" in r and "loss" in r]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.plot(steps, [r["loss"] for r in rows], lw=1.2)
    a1.set_xlabel("step"), a1.set_ylabel("loss"), a1.set_title("training loss")
    if any("lr" in r for r in rows):
        a2.plot(steps, [r.get("lr", float("nan")) for r in rows], color="tab:orange", lw=1.2)
    a2.set_xlabel("step"), a2.set_ylabel("learning rate"), a2.set_title("LR schedule")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


ROUND_CURVES = ("pass@1", "maj@k", "rm@k", "rm_pairwise_accuracy")


def plot_rounds(rows: list[dict], out_png: Path, title: str = "") -> Path | None:
    """Accuracy per round (pass@1, maj@k, rm@k, RM pairwise accuracy) from a table with a ``round``
    column, one line per (set, mode) and figure; None when the table has no round or no such figure."""
    rows = [r for r in rows if isinstance(r.get("round"), int)]
    curves = [c for c in ROUND_CURVES if any(isinstance(r.get(c), (int, float)) for r in rows)]
    if not rows or not curves:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    groups = sorted({(str(r.get("set", "")), str(r.get("mode", ""))) for r in rows})
    for g in groups:
        sel = sorted((r for r in rows if (str(r.get("set", "")), str(r.get("mode", ""))) == g), key=lambda r: r["round"])
        for c in curves:
            pts = [(r["round"], r[c]) for r in sel if isinstance(r.get(c), (int, float))]
            if pts:
                label = " ".join(x for x in (*g, c) if x)
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", lw=1.2, label=label)
    ax.set_xlabel("round"), ax.set_ylabel("accuracy"), ax.set_ylim(0, 1)
    ax.set_xticks(sorted({r["round"] for r in rows}))
    ax.legend(fontsize=7)
    ax.set_title(title or "accuracy per round", fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def _round_tables(metrics: dict, prefix: str = "") -> list[tuple[str, list[dict]]]:
    """(name, rows) of every list-of-dicts in a stage's metrics whose rows carry a ``round``."""
    out = []
    for k, v in metrics.items():
        if isinstance(v, dict):
            out += _round_tables(v, f"{prefix}{k}.")
        elif isinstance(v, list) and v and all(isinstance(r, dict) and "round" in r for r in v):
            out.append((f"{prefix}{k}", v))
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _render_metrics(metrics: dict, prefix: str = "") -> tuple[list[str], list[str]]:
    """(key-figure lines, table blocks) from a stage's nested metrics dict."""
    figures: list[str] = []
    tables: list[str] = []
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            f, t = _render_metrics(v, prefix=f"{name}.")
            figures += f
            tables += t
        elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            cols: list[str] = []
            for r in v:
                cols += [c for c in r if c not in cols and not isinstance(r[c], (dict, list))]
            lines = [f"**{name}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in v]
            tables.append("\n".join(lines))
        elif isinstance(v, (int, float, str, bool)) or v is None:
            figures.append(f"- {name}: {_fmt(v)}")
    return figures, tables


def write_report(plan) -> Path:
    """Write report.md / report.json for every pipeline in the plan (stages not run are listed as such)."""
    wd = Path(plan.workdir)
    wd.mkdir(parents=True, exist_ok=True)
    plots_dir = wd / "report_plots"
    md = ["# domainspec run report", "", f"Pipeline file: `{plan.source}`; workdir: `{wd}`", ""]
    data: dict[str, Any] = {"source": plan.source, "workdir": str(wd), "pipelines": {}}
    for pname, stages in plan.pipelines.items():
        md += [f"## Pipeline `{pname}`", "", "| stage | type | status | time (s) |", "|---|---|---|---|"]
        pdata = {}
        details: list[str] = []
        for s in stages:
            marker_path = s.out_dir / ".done.json"
            marker = None
            if marker_path.exists():
                try:
                    marker = json.loads(marker_path.read_text())
                except ValueError:
                    marker = None
            fresh = marker is not None and marker.get("hash") == s.hash
            status = "done" if fresh else ("failed" if (s.out_dir / "error.log").exists() else
                                           ("stale" if marker else "not run"))
            elapsed = marker.get("elapsed_s") if marker else None
            md.append(f"| {s.name} | {s.type.name} | {status} | {_fmt(elapsed) if elapsed is not None else '-'} |")
            pdata[s.name] = {"type": s.type.name, "status": status, "elapsed_s": elapsed,
                             "metrics": (marker or {}).get("metrics", {}), "out_dir": str(s.out_dir)}
            if not fresh:
                continue
            figures, tables = _render_metrics(marker.get("metrics", {}))
            plots = []
            for tname, rows in _round_tables(marker.get("metrics", {})):
                png = plot_rounds(rows, plots_dir / f"{pname}_{s.name}_{tname}_rounds.png",
                                  title=f"{pname}/{s.name}: accuracy per round")
                if png:
                    plots.append(png)
            if s.out_dir.exists():
                for mp in sorted(s.out_dir.rglob("metrics.jsonl")):
                    rel = mp.parent.relative_to(s.out_dir)
                    tag = "_".join((pname, s.name, *rel.parts)) or f"{pname}_{s.name}"
                    png = plot_training_curves(mp, plots_dir / f"{tag}.png", title=f"{pname}/{s.name}/{rel}")
                    if png:
                        plots.append(png)
            pdata[s.name]["plots"] = [str(p) for p in plots]
            if figures or tables or plots:
                details += [f"### {pname}/{s.name}", ""] + figures + [""]
                for t in tables:
                    details += [t, ""]
                for p in plots:
                    details += [f"![{p.stem}]({p.relative_to(wd)})", ""]
        md += [""] + details
        data["pipelines"][pname] = pdata
    (wd / "report.md").write_text("\n".join(md) + "\n")
    (wd / "report.json").write_text(json.dumps(data, indent=1, default=str))
    return wd / "report.md"
