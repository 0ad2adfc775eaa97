"""A math problem set given as rows ``{"id", "question", "answer"}``, scored like any benchmark.

The math loop's held-out set, a user's problems file and GSM8K / MATH problems (with their gold
answers already taken by their own benchmark's ``gold``) all become :class:`Task` objects of a
:class:`ProblemSet`, so the one generate -> score path grades and aggregates them. It is built
per problem list, not registered: it has no data file of its own.
"""
from __future__ import annotations

from typing import Sequence

from domainspec.eval.benchmarks.base import Kind, Task


class ProblemSet:
    """Benchmark interface over in-memory problems; the gold answer is each row's ``answer``."""

    kind = Kind.MATH
    version = "problems-1"

    def __init__(self, name: str):
        self.name = name

    def tasks(self, problems: Sequence[dict], require_answers: bool = True) -> list[Task]:
        """One Task per problem; problems without an answer are an error unless ``require_answers`` is off
        (sampling only: such tasks cannot be scored)."""
        missing = [str(p.get("id")) for p in problems if p.get("answer") is None]
        if missing and require_answers:
            raise ValueError(f"{self.name}: problems without an answer cannot be scored: {missing[:5]}")
        return [Task(task_id=str(p["id"]), prompt=p["question"], data=p) for p in problems]

    def gold(self, task: Task) -> str:
        return str(task.data["answer"])

    def breakdown(self, task: Task) -> dict:
        return {}

    def protocol(self, style: str | None = None) -> str:
        return f"{self.name}: the math recipe's CoT/TIR chat prompts (math/prompts.py), graded against 'answer'"
