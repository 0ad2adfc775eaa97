"""MATH (Hendrycks et al. 2021): competition problems; MATH-500 or the full test set.

Usage::

    from domainspec.eval.benchmarks.hendrycks_math import MATH
    tasks = MATH.load("../shared/data/math/math500_test.jsonl")   # or "HuggingFaceH4/MATH-500"
    tasks = MATH.load("MATH/test")        # the original release: test/<subject>/<n>.json files
    MATH.gold(tasks[0]); MATH.breakdown(tasks[0])                 # {"subject": ..., "level": 1..5}

Accepted rows: MATH-500 (``problem, solution, answer, subject, level: int,
unique_id``) and the full MATH format (``problem, solution, type, level:
"Level 3"``). Gold is the ``answer`` field, else the last ``\\boxed{}`` of the
solution (:func:`math_gold`). The report breaks results down by subject
and level.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from domainspec.eval.benchmarks.base import Task, apply_limit, field_texts
from domainspec.eval.benchmarks.cot import CoTMathBenchmark
from domainspec.eval.datafiles import EvalDataError, Row, load_rows, require, unique_ids
from domainspec.eval.grader.extract import last_boxed

_LEVEL = re.compile(r"^\s*(?:level\s*)?([1-5])\s*$", re.I)


def parse_level(value) -> int | None:
    """1..5 from ``3`` or ``"Level 3"``; None for ``"Level ?"`` (a few rows of the full set)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _LEVEL.match(str(value)) if value is not None else None
    return int(m.group(1)) if m else None


def math_gold(row: dict) -> str:
    """MATH gold: the ``answer`` field, else the last ``\\boxed{}`` of ``solution``."""
    if row.get("answer") not in (None, ""):
        return str(row["answer"]).strip()
    boxed = last_boxed(row.get("solution") or "")
    if boxed is None:
        raise ValueError(f"MATH row {row.get('unique_id', '?')!r} has no 'answer' and no \\boxed{{}} in its solution")
    return boxed.strip()


def read_release_dir(root: Path) -> list[Row]:
    """Rows of the original release layout ``<root>/<subject>/<n>.json`` (one object per file).

    ``unique_id`` is the path from the release root, e.g. ``test/algebra/1.json``,
    the form MATH-500 uses.
    """
    rows: list[Row] = []
    for f in sorted(root.glob("*/*.json"), key=lambda p: (p.parent.name, int(p.stem) if p.stem.isdigit() else 0, p.stem)):
        try:
            row = json.loads(f.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise EvalDataError(f"{f}:{e.lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise EvalDataError(f"{f}: expected a JSON object")
        row.setdefault("unique_id", f"{root.name}/{f.parent.name}/{f.name}")
        rows.append((str(f), row))
    return rows


class MATHBenchmark(CoTMathBenchmark):
    name = "math"
    version = "math-1.0"
    hub_name = "HuggingFaceH4/MATH-500"

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        source = path or self.hub_name
        p = Path(source).expanduser()
        if p.is_dir() and any(p.glob("*/*.json")):
            rows = read_release_dir(p)
        else:
            rows = load_rows(source, split=split or "test")
        if not rows:
            raise EvalDataError(f"{source}: no MATH problems")
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            require(row, where, ("problem",), {"problem": str})
            if not isinstance(row.get("answer"), str) and not isinstance(row.get("solution"), str):
                raise EvalDataError(f"{where}: needs an 'answer' or a 'solution' string for the gold answer")
            row = dict(row)
            row["subject"] = row.get("subject") or row.get("type") or "unknown"
            row["level"] = parse_level(row.get("level"))
            tasks.append(Task(task_id=tid, prompt=row["problem"], data=row))
        return apply_limit(tasks, limit)

    def gold(self, task: Task) -> str:
        return math_gold(task.data)

    def breakdown(self, task: Task) -> dict:
        level = task.data.get("level")
        return {"subject": task.data.get("subject", "unknown"),
                "level": f"Level {level}" if level is not None else "Level ?"}

    def local_copy(self, data_dir: Path) -> Path:
        return data_dir / "math" / "math500_test.jsonl"

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        return field_texts(path, ("problem", "solution"))


MATH = MATHBenchmark()
