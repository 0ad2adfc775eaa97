"""The Qwen2.5-Math evaluation suite beyond GSM8K and MATH: ten benchmarks, each with its quirks.

Usage::

    from domainspec.eval.benchmarks.registry import get_benchmark
    bench = get_benchmark("minerva_math")
    tasks = bench.load("../shared/data/math_breadth/minerva_math.jsonl")  # or Qwen's evaluation/data/minerva_math/test.jsonl
    bench.gold(tasks[0]); bench.breakdown(tasks[0])

Files: either the flattened form ``{task_id, question, gold_answer, source_row}`` (the copies in
``../shared/data/math_breadth/``) or the raw rows of Qwen2.5-Math's ``evaluation/data/<name>/test.jsonl``,
to which each benchmark's own question and gold rules apply (the rules of Qwen's
``parse_question`` / ``parse_ground_truth``, re-implemented):

=============== ======================================= ============================================
benchmark       question                                gold (raw, before normalization)
=============== ======================================= ============================================
aime24, amc23   ``question`` (else ``problem``)          ``answer`` (amc23 stores floats: ``27.0``)
minerva_math    ``problem``                              the final answer of ``solution`` (last box)
olympiadbench   ``question``                             ``final_answer[0]`` without ``$``; ``unit``
                                                        and ``is_multiple_answer`` go to the report
college_math,   ``question``                             ``answer`` without ``$``
gaokao2023en
svamp           ``Body`` (a ``.`` added) + ``Question``  ``Answer`` (a float)
asdiv           ``body`` + ``question``                  ``answer`` without its ``(unit)``
cmath           ``question`` (Chinese)                   ``answer``
math23k         ``original_text`` (Chinese)              ``ans`` (not in Qwen's harness; its default)
=============== ======================================= ============================================

Rows with an empty gold answer (2 in Qwen's gaokao2023en, whose answers sit in the question
text) are kept with a warning naming them. A question whose gold is true/false or yes/no gets `` (True or False)`` / `` (Yes or No)``
appended, as Qwen's harness does. Chinese benchmarks accept the answer phrase 答案是 in strict
mode too; word-problem sets (svamp, asdiv) read ``$`` before a number as currency. Grading is the
one grader's (:class:`~domainspec.eval.grader.math_grader.MathGrader`); its qwen-compat mode
branches on these names exactly as Qwen's harness branches on its data names.
"""
from __future__ import annotations

import ast
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from domainspec.eval.benchmarks.base import Task, apply_limit, field_texts
from domainspec.eval.benchmarks.cot import CoTMathBenchmark
from domainspec.eval.datafiles import EvalDataError, load_rows, unique_ids

QwenRow = dict
log = logging.getLogger(__name__)


def _field(*names: str) -> Callable[[QwenRow, str], str]:
    def rule(row: QwenRow, where: str):
        for name in names:
            if name in row and row[name] is not None:
                return row[name]
        raise EvalDataError(f"{where}: missing field {' or '.join(map(repr, names))} "
                            f"(row has: {', '.join(sorted(row)) or 'nothing'})")
    return rule


def _svamp_question(row: QwenRow, where: str) -> str:
    body = str(_field("Body")(row, where)).strip()
    return f"{body if body.endswith('.') else body + '.'} {str(_field('Question')(row, where)).strip()}"


def _asdiv_question(row: QwenRow, where: str) -> str:
    return f"{str(_field('body')(row, where)).strip()} {str(_field('question')(row, where)).strip()}"


def _minerva_gold(row: QwenRow, where: str) -> str:
    from domainspec.eval.grader.qwen_compat import qwen_extract

    answer = qwen_extract(str(_field("solution")(row, where)), "minerva_math")
    if not answer:
        raise EvalDataError(f"{where}: 'solution' has no final answer (no \\boxed{{}})")
    return answer


def _olympiad_gold(row: QwenRow, where: str) -> str:
    answers = _field("final_answer")(row, where)
    if isinstance(answers, str):  # some copies store the list as its Python repr
        try:
            answers = ast.literal_eval(answers)
        except (ValueError, SyntaxError):
            answers = [answers]
    if not isinstance(answers, list) or not answers:
        raise EvalDataError(f"{where}: 'final_answer' should be a non-empty list, got {answers!r}")
    return str(answers[0]).strip("$")


def _strip_dollars(name: str) -> Callable[[QwenRow, str], str]:
    return lambda row, where: str(_field(name)(row, where)).replace("$", "").strip()


def _asdiv_gold(row: QwenRow, where: str) -> str:
    return re.sub(r"\(.*?\)", "", str(_field("answer")(row, where))).strip()


@dataclass(frozen=True)
class SuiteSpec:
    """One benchmark of the suite: its rules for raw Qwen rows and what it reports."""

    name: str
    question: Callable[[QwenRow, str], str]
    gold: Callable[[QwenRow, str], str]
    chinese: bool = False
    currency: bool = False
    breakdown_fields: tuple[str, ...] = ()
    note: str = ""


SPECS = (
    SuiteSpec("aime24", _field("question", "problem"), _field("answer"), note="AIME 2024 I and II"),
    SuiteSpec("amc23", _field("question", "problem"), _field("answer"), note="AMC 12 2023"),
    SuiteSpec("minerva_math", _field("problem"), _minerva_gold, breakdown_fields=("type",),
              note="Minerva's MIT OCW problems; Qwen skips unit deletion here"),
    SuiteSpec("olympiadbench", _field("question"), _olympiad_gold,
              breakdown_fields=("subfield", "answer_type", "is_multiple_answer", "unit"),
              note="OlympiadBench OE_TO_maths_en_COMP"),
    SuiteSpec("college_math", _field("question"), _strip_dollars("answer"), breakdown_fields=("data_topic",)),
    SuiteSpec("gaokao2023en", _field("question"), _strip_dollars("answer"), note="GaoKao 2023, English"),
    SuiteSpec("svamp", _svamp_question, _field("Answer"), currency=True, breakdown_fields=("Type",)),
    SuiteSpec("asdiv", _asdiv_question, _asdiv_gold, currency=True, breakdown_fields=("solution_type",)),
    SuiteSpec("cmath", _field("question"), _field("answer"), chinese=True, breakdown_fields=("grade",)),
    SuiteSpec("math23k", _field("original_text", "question"), _field("ans", "answer"), chinese=True),
)


def _with_mark(question: str, gold: str) -> str:
    low = gold.strip().lower()
    if low in ("true", "false"):
        return question + " (True or False)"
    if low in ("yes", "no"):
        return question + " (Yes or No)"
    return question


@dataclass
class QwenSuiteBenchmark(CoTMathBenchmark):
    """A benchmark of the Qwen2.5-Math suite (see the module docstring for its rules)."""

    spec: SuiteSpec
    name: str = field(init=False)
    version: str = field(init=False)
    hub_name = None

    def __post_init__(self):
        self.name = self.spec.name
        self.version = f"{self.spec.name}-qwen25math-1.0"
        self.dollar_is_currency = self.spec.currency

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        if path is None:
            raise EvalDataError(f"{self.name}: give the data file (Qwen2.5-Math's evaluation/data/{self.name}/"
                                f"test.jsonl, or the flattened copy math_breadth/{self.name}.jsonl); "
                                "it has no hub name")
        rows = load_rows(path, split=split or "test")
        if not rows:
            raise EvalDataError(f"{path}: no {self.name} rows")
        tasks, empty = [], []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            if "gold_answer" in row and "question" in row:  # flattened: the rules were applied already
                source = row.get("source_row") if isinstance(row.get("source_row"), dict) else {}
                question, gold = row["question"], row["gold_answer"]
            else:
                source = row
                question, gold = self.spec.question(row, where), self.spec.gold(row, where)
            if not isinstance(question, str) or not question.strip():
                raise EvalDataError(f"{where}: empty or non-text question")
            if gold is None:
                raise EvalDataError(f"{where}: the gold answer is null")
            gold = str(gold)
            if not gold.strip():
                empty.append(where)
            tasks.append(Task(task_id=tid, prompt=_with_mark(question.strip(), gold),
                              data={"gold_answer": gold, "source_row": source}))
        if empty:  # kept, not dropped: the harness keeps them too (and counts an empty reply right)
            log.warning("%s: %d row(s) with an empty gold answer, kept (strict grades every reply wrong there): %s",
                        self.name, len(empty), ", ".join(empty))
        return apply_limit(tasks, limit)

    def gold(self, task: Task) -> str:
        return task.data["gold_answer"]

    def breakdown(self, task: Task) -> dict:
        source = task.data.get("source_row") or {}
        return {f: str(source.get(f)) for f in self.spec.breakdown_fields if f in source}

    def local_copy(self, data_dir: Path) -> Path:
        return data_dir / "math_breadth" / f"{self.name}.jsonl"

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        return field_texts(path, ("question", "problem", "original_text", "Body", "body"))


SUITE = {spec.name: QwenSuiteBenchmark(spec) for spec in SPECS}
AIME24, AMC23, MINERVA_MATH, OLYMPIADBENCH, COLLEGE_MATH, GAOKAO2023EN, SVAMP, ASDIV, CMATH, MATH23K = SUITE.values()
