"""What a benchmark is: the :class:`Task` record and the :class:`Benchmark` interface.

Each benchmark module (humaneval, mbpp, evalplus, gsm8k, hendrycks_math, ...) defines one
object satisfying :class:`Benchmark`; :mod:`domainspec.eval.benchmarks.registry` registers
them by name. Scoring (:mod:`domainspec.eval.scoring`) only talks to this
interface, so a new benchmark touches no scoring code. Nothing here runs code;
:func:`field_texts` (a row's text for decontamination) is the only reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Iterator, Literal, Protocol, Sequence, runtime_checkable

from domainspec.common.artifacts import iter_jsonl, row_id

Style = Literal["base", "chat"]


class Kind(StrEnum):
    """What judges a benchmark's samples: programs run in the sandbox (code) or answers go to the grader (math)."""

    CODE = "code"
    MATH = "math"


@dataclass
class Task:
    """One benchmark problem: its id (a string), the text a model continues, and the raw row."""

    task_id: str
    prompt: str
    data: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Benchmark(Protocol):
    """The interface every registered benchmark provides.

    ``kind == "code"`` benchmarks also provide ``program(task, completion) -> str``
    (a self-contained program that raises if the completion is wrong) and may provide
    ``reference_completion(task) -> str | None`` (the task's reference solution as a completion;
    scoring times ``program(task, reference)`` once per machine to set that task's time limit,
    see :mod:`domainspec.common.sandbox.time_limits`);
    a code benchmark whose tests compare outputs with its reference solution's (HumanEval+, MBPP+,
    :mod:`domainspec.eval.benchmarks.evalplus`) may also provide ``prepare(tasks, sandbox, config)
    -> (time limit per task id, summary info)``, which scoring calls instead of the calibration above
    before any ``program`` (it computes the expected outputs in that sandbox), and
    ``verdict(task, exec_result)`` -> an object with ``passed``, ``status``, ``base_passed``,
    ``base_status`` and ``detail`` (the base-tests verdict goes into results.jsonl and ``base_pass@k``);
    ``kind == "math"`` benchmarks provide ``gold(task) -> str`` and
    ``breakdown(task) -> dict`` (e.g. subject and level for the report).
    Every benchmark names its local copy (``local_copy(data_dir)``) and the text of each
    row that training data must not share (``decontamination_texts(path)``, see
    :mod:`domainspec.eval.benchmarks.decontamination`).
    """

    name: str
    version: str
    kind: Kind

    def load(self, path: str | None = None, limit: int | None = None,
             split: str | None = None) -> list[Task]: ...

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]: ...

    def stop_sequences(self, style: Style = "base") -> list[str]: ...

    def protocol(self, style: Style | None = None) -> str: ...

    def local_copy(self, data_dir: Path) -> Path: ...

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]: ...


def apply_limit(tasks: Sequence[Task], limit: int | None) -> list[Task]:
    """The first ``limit`` tasks (all when ``limit`` is None); a negative limit is an error."""
    if limit is None:
        return list(tasks)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return list(tasks[:limit])


def row_text(row: dict, fields: Sequence[str] = ()) -> str:
    """``fields`` of ``row`` joined by newlines (a list field item by item); when none of them
    holds text (or none are named), every string field of the row."""
    parts = []
    for key in fields:
        v = row.get(key)
        parts.extend(v if isinstance(v, list) else [v] if isinstance(v, str) else [])
    if not parts:
        parts = [v for v in row.values() if isinstance(v, str)]
    return "\n".join(parts)


def field_texts(path: str | Path, fields: Sequence[str] = ()) -> Iterator[tuple[str, str]]:
    """``(row id, row_text(row, fields))`` for every row of a local JSONL file, in file order."""
    for i, (_, row) in enumerate(iter_jsonl(path)):
        yield row_id(row, i), row_text(row, fields)
