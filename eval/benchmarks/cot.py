"""The 0-shot chain-of-thought prompting the math benchmarks (GSM8K, MATH) share.

Usage::

    class MyMathBenchmark(CoTMathBenchmark): ...   # prompt / stop_sequences / protocol come from here
    cot_prompt("1+1?", "chat")                     # [system: COT_INSTRUCTION, user: "1+1?"]

The instruction is Qwen2.5-Math's CoT system prompt (Yang et al. 2024), the same text the math
domain samples and trains with, so it is defined once, in
:mod:`domainspec.common.data.builtin.math_prompts`. This module holds no benchmark data.
"""
from __future__ import annotations

from domainspec.common.data.builtin.math_prompts import COT_SYSTEM_PROMPT
from domainspec.eval.benchmarks.base import Kind, Style, Task

COT_INSTRUCTION = COT_SYSTEM_PROMPT


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
    kind = Kind.MATH

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]:
        return cot_prompt(task.prompt, style)

    def stop_sequences(self, style: Style = "base") -> list[str]:
        return ["\nQuestion:", "\n\n\n"] if style == "base" else []

    def protocol(self, style: Style | None = None) -> str:
        return cot_protocol(self.name, style)
