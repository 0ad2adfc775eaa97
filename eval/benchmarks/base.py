"""What a benchmark is: the :class:`Task` record and the :class:`Benchmark` interface.

Each benchmark module (humaneval, mbpp, gsm8k, hendrycks_math) defines one
object satisfying :class:`Benchmark`; :mod:`domainspec.eval.benchmarks.registry` registers
them by name. Scoring (:mod:`domainspec.eval.scoring`) only talks to this
interface, so a new benchmark touches no scoring code. Nothing here loads data
or runs code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence, runtime_checkable

Style = Literal["base", "chat"]
Kind = Literal["code", "math"]


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
    (a self-contained program that raises if the completion is wrong);
    ``kind == "math"`` benchmarks provide ``gold(task) -> str`` and
    ``breakdown(task) -> dict`` (e.g. subject and level for the report).
    """

    name: str
    version: str
    kind: Kind

    def load(self, path: str | None = None, limit: int | None = None,
             split: str | None = None) -> list[Task]: ...

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]: ...

    def stop_sequences(self, style: Style = "base") -> list[str]: ...

    def protocol(self, style: Style | None = None) -> str: ...


def apply_limit(tasks: Sequence[Task], limit: int | None) -> list[Task]:
    """The first ``limit`` tasks (all when ``limit`` is None); a negative limit is an error."""
    if limit is None:
        return list(tasks)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return list(tasks[:limit])
