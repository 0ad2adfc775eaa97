"""GSM8K (Cobbe et al. 2021): grade-school word problems, scored by final-answer equivalence.

Usage::

    from domainspec.eval.benchmarks.gsm8k import GSM8K
    tasks = GSM8K.load("../shared/data/gsm8k/test.jsonl")   # 1319 rows; or "openai/gsm8k:main"
    GSM8K.gold(tasks[0])                                     # the number after '####'

Rows are ``{"question", "answer"}`` where ``answer`` is the worked solution
ending in ``#### <number>``. Answers are extracted and compared by the shared
:class:`domainspec.eval.grader.math_grader.MathGrader` (scoring owns the one grader).
"""
from __future__ import annotations

from domainspec.eval.datafiles import EvalDataError, load_rows, require, unique_ids
from domainspec.eval.benchmarks.base import Style, Task, apply_limit

# the CoT instruction of Qwen2.5-Math (Yang et al. 2024), used for every math benchmark here
COT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def cot_prompt(question: str, style: Style) -> str | list[dict]:
    """The 0-shot CoT prompt shared by the math benchmarks (system message for chat models)."""
    if style == "base":
        return f"Question: {question}\n{COT_INSTRUCTION}\nAnswer:"
    if style == "chat":
        return [{"role": "system", "content": COT_INSTRUCTION}, {"role": "user", "content": question}]
    raise ValueError(f"style must be 'base' or 'chat', got {style!r}")


def cot_protocol(bench: str, style: Style | None) -> str:
    return {
        "base": f"{bench}-base-0shot-cot: 'Question: ... {COT_INSTRUCTION} Answer:'",
        "chat": f"{bench}-chat-0shot-cot: system '{COT_INSTRUCTION}', user = problem",
    }.get(style or "", f"{bench}: responses as given (generation protocol not recorded in the samples)")


class CoTMathBenchmark:
    """Prompting shared by the math benchmarks: 0-shot CoT, base or chat."""

    name = "math-cot"

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]:
        return cot_prompt(task.prompt, style)

    def stop_sequences(self, style: Style = "base") -> list[str]:
        return ["\nQuestion:", "\n\n\n"] if style == "base" else []

    def protocol(self, style: Style | None = None) -> str:
        return cot_protocol(self.name, style)


class GSM8KBenchmark(CoTMathBenchmark):
    name = "gsm8k"
    version = "gsm8k-1.0"
    kind = "math"
    hub_name = "openai/gsm8k:main"

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        source = path or self.hub_name
        rows = load_rows(source, split=split or "test")
        if not rows:
            raise EvalDataError(f"{source}: no GSM8K rows")
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            require(row, where, ("question", "answer"), {"question": str, "answer": str})
            if "####" not in row["answer"]:
                raise EvalDataError(f"{where}: 'answer' has no '#### <number>' final line")
            tasks.append(Task(task_id=tid, prompt=row["question"], data=row))
        return apply_limit(tasks, limit)

    def gold(self, task: Task) -> str:
        from domainspec.eval.grader.math_grader import gsm8k_gold

        return gsm8k_gold(task.data["answer"])

    def breakdown(self, task: Task) -> dict:
        return {}


GSM8K = GSM8KBenchmark()
