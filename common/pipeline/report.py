"""Top-level run report: ``<workdir>/report.md`` + ``report.json`` + PNG plots.

Built from what the stages left behind (each stage's done marker with its
:class:`StageResult`, read through ``markers``, and every ``metrics.jsonl`` the
training loop wrote), so the numbers in the report are the stages' own. Figures
become a key-figure list, tables a table each (tables with a ``round`` column also
an accuracy-per-round plot). Also usable by a single stage: :func:`plot_training_curves`.
"""
from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path
from typing import Any

from domainspec.common.artifacts import read_jsonl_rows, write_json
from domainspec.common.pipeline import markers
from domainspec.common.pipeline.stages import StageResult

log = logging.getLogger(__name__)


class Status(StrEnum):
    DONE = "done"  # a done marker with the planned hash
    STALE = "stale"  # done earlier with another config or inputs
    FAILED = "failed"  # the last run left error.log
    NOT_RUN = "not run"


def plot_training_curves(metrics_path: Path, out_png: Path, title: str = "") -> Path | None:
    """Loss and LR against step from a metrics.jsonl; None when there is nothing to plot."""
    # a killed run may leave a torn last line
    rows = [r for r in read_jsonl_rows(metrics_path, tolerate_torn_tail=True) if "step" in r and "loss" in r]
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


def _round_tables(result: StageResult) -> list[tuple[str, list[dict]]]:
    """(name, rows) of every table of a stage result whose rows all carry a ``round``."""
    return [(name, rows) for name, rows in result.tables.items() if all("round" in r for r in rows)]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _render(result: StageResult) -> tuple[list[str], list[str]]:
    """(key-figure lines, table blocks) of a stage result; table cells that are not scalars are left out."""
    figures = [f"- {name}: {_fmt(v)}" for name, v in result.figures.items()]
    tables: list[str] = []
    for name, rows in result.tables.items():
        cols: list[str] = []
        for r in rows:
            cols += [c for c in r if c not in cols and not isinstance(r[c], (dict, list))]
        lines = [f"**{name}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
        tables.append("\n".join(lines))
    return figures, tables


def _status(stage) -> tuple[Status, markers.Marker | None]:
    done = markers.is_done(stage.out_dir, stage.hash)
    if done.action is markers.Action.SKIP:
        return Status.DONE, done.marker
    if (stage.out_dir / "error.log").exists():
        return Status.FAILED, done.marker
    return (Status.STALE if done.marker else Status.NOT_RUN), done.marker


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
            status, marker = _status(s)
            result = StageResult.from_dict(marker.result, where=f"{s.out_dir} done marker") if marker else StageResult()
            elapsed = marker.elapsed_s if marker else None
            md.append(f"| {s.name} | {s.type.name} | {status} | {_fmt(elapsed) if elapsed is not None else '-'} |")
            pdata[s.name] = {"type": s.type.name, "status": status, "elapsed_s": elapsed,
                             "metrics": result.flat(), "out_dir": str(s.out_dir)}
            if status is not Status.DONE:
                continue
            figures, tables = _render(result)
            plots = []
            for tname, rows in _round_tables(result):
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
    write_json(data, wd / "report.json", indent=1)
    return wd / "report.md"
