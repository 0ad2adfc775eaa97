"""MBPP (Austin et al. 2021, "Program Synthesis with Large Language Models"), scored by its asserts.

Usage::

    from domainspec.eval.benchmarks.mbpp import MBPP
    tasks = MBPP.load("../shared/data/mbpp/mbpp.jsonl")             # test split: task_id 11-510
    tasks = MBPP.load(path, split="validation")                      # 511-600; also train, prompt, all
    MBPP.prompt(tasks[0], "base")   # the paper's 3-shot prompt (shots: tasks 2, 3, 4), stop at [DONE]
    MBPP.prompt(tasks[0], "chat")   # a 0-shot chat request for instruct models

'MBPP' means different things in different harnesses (0-shot or 3-shot, full or
sanitized, which tests are shown), so :meth:`MBPP.protocol` names the protocol and
scoring writes it into summary.json and report.md. The default hub source is
``google-research-datasets/mbpp`` (config ``full``); its ``sanitized`` config
(``prompt`` instead of ``text``) loads too. This module runs nothing.
"""
from __future__ import annotations

import ast
import builtins
from pathlib import Path
from typing import Iterator

from domainspec.eval.benchmarks.base import Kind, Style, Task, apply_limit, field_texts
from domainspec.eval.code_sanitize import parse_or_none, sanitize
from domainspec.eval.datafiles import EvalDataError, load_rows, require, unique_ids

# the standard split by task_id (google-research/mbpp README)
SPLITS: dict[str, tuple[int, int] | None] = {
    "test": (11, 510), "prompt": (1, 10), "validation": (511, 600), "train": (601, 974), "all": None}
FEWSHOT_IDS = ("2", "3", "4")  # the paper's three shots
BEGIN, DONE = "[BEGIN]", "[DONE]"


def task_text(text: str, tests: list[str]) -> str:
    """One problem in the paper's format, up to and including ``[BEGIN]``."""
    return (f"You are an expert Python programmer, and here is your task: {text} "
            f"Your code should pass these tests:\n\n" + "\n".join(tests) + f"\n{BEGIN}\n")


def entry_point(code: str, tests: list[str]) -> str | None:
    """The function the asserts call that the reference code defines (else the first non-builtin call)."""
    tree = parse_or_none(code)
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))} if tree else set()
    called = []
    for test in tests:
        tree = parse_or_none(test)
        if tree is None:
            continue
        called += [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return next((c for c in called if c in defined),
                next((c for c in called if not hasattr(builtins, c)), None))


class MBPPBenchmark:
    name = "mbpp"
    version = "mbpp-1.0"
    kind = Kind.CODE
    hub_name = "google-research-datasets/mbpp:full"
    # a hub dataset is split by file; load every split, then select by task_id as for the local file
    hub_split = "prompt+test+validation+train"

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        split = split or "test"
        if split not in SPLITS:
            raise EvalDataError(f"mbpp: unknown split {split!r} (choose from {', '.join(SPLITS)})")
        source = path or self.hub_name
        rows = load_rows(source, split=self.hub_split)
        shots: dict[str, dict] = {}
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            row = dict(row)
            if "text" not in row and "prompt" in row:  # the 'sanitized' config
                row["text"] = row["prompt"]
            require(row, where, ("task_id", "text", "code", "test_list"),
                    {"text": str, "code": str, "test_list": list})
            try:
                num = int(row["task_id"])
            except (TypeError, ValueError):
                raise EvalDataError(f"{where}: task_id should be an integer, got {row['task_id']!r}") from None
            row.setdefault("test_setup_code", "")
            row["entry_point"] = entry_point(row["code"], row["test_list"])
            if tid in FEWSHOT_IDS:
                shots[tid] = row
            bounds = SPLITS[split]
            if bounds is None or bounds[0] <= num <= bounds[1]:
                tasks.append(Task(task_id=tid, prompt=task_text(row["text"], row["test_list"]), data=row))
        if not tasks:
            raise EvalDataError(f"{source}: no MBPP tasks in split {split!r} (task_id range {SPLITS[split]})")
        fewshot = [shots[i] for i in FEWSHOT_IDS if i in shots]
        for task in tasks:
            task.data["fewshot"] = fewshot  # one shared list: the source's tasks 2, 3, 4
        return apply_limit(tasks, limit)

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]:
        if style == "base":
            shots = task.data.get("fewshot") or []
            if len(shots) != len(FEWSHOT_IDS):
                raise EvalDataError(f"mbpp: the 3-shot prompt needs tasks {', '.join(FEWSHOT_IDS)} "
                                    "in the data source (load the full MBPP file)")
            # the paper's code uses \r\n line ends; the prompt shows plain newlines
            parts = [task_text(s["text"], s["test_list"]) + s["code"].replace("\r\n", "\n").rstrip()
                     + f"\n{DONE}\n" for s in shots]
            return "".join(parts) + task.prompt
        if style == "chat":
            body = task.prompt[: -len(f"{BEGIN}\n")].rstrip()
            return [{"role": "user", "content": body + "\n\nWrite the Python function in one ```python code block."}]
        raise ValueError(f"style must be 'base' or 'chat', got {style!r}")

    def stop_sequences(self, style: Style = "base") -> list[str]:
        return [DONE] if style == "base" else []

    def protocol(self, style: Style | None = None) -> str:
        return {
            "base": "mbpp-3shot-austin2021: the MBPP paper's prompt, shots = tasks 2,3,4, "
                    "3 asserts shown, code between [BEGIN] and [DONE]",
            "chat": "mbpp-chat-0shot: task text + its 3 asserts as a chat request, code from the fenced block",
        }.get(style or "", "mbpp: completions as given (generation protocol not recorded in the samples)")

    def local_copy(self, data_dir: Path) -> Path:
        return data_dir / "mbpp" / "mbpp.jsonl"

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        """Every row of the file (all 974 of the full release, not one split): text + code + asserts."""
        return field_texts(path, ("text", "code", "test_list"))

    def program(self, task: Task, completion: str) -> str:
        """The code (cut at [DONE]) + ``test_setup_code`` + the task's asserts.

        The setup goes after the code: the only non-empty setups (tasks 367, 927)
        build trees from the solution's own ``Node`` class.
        """
        code = completion.split(DONE, 1)[0]
        if code.lstrip().startswith(BEGIN):
            code = code.lstrip()[len(BEGIN):]
        code = sanitize(code, entry_point=task.data.get("entry_point"))
        tests = "\n".join(task.data["test_list"])
        return f"{code}\n\n{task.data.get('test_setup_code') or ''}\n{tests}\n"

    def reference_completion(self, task: Task) -> str:
        """The row's reference ``code`` (required by :meth:`load`)."""
        return task.data["code"]


MBPP = MBPPBenchmark()
