"""The Coder's conversation formats: one place for how requests and answers read.

Training rows (toy tasks, stdlib doctests) and the held-out / HumanEval evaluation
of coder/sft.py use these same functions, so the model is scored on exactly the
format it was trained on: a function request is HumanEval's own chat prompt
(domainspec.eval.humaneval), for the toy tasks too. Answers are a fenced ``python`` block, which
domainspec.eval's HumanEval scoring accepts as a whole response.

Not here: the chat template itself (the tokenizer's) and code sanitizing (domainspec.eval.code_sanitize).
"""
from __future__ import annotations

import re

_FENCE = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def function_request(signature: str, doc: str) -> str:
    """Ask for a function from its signature and docstring (stdlib doctest rows)."""
    return f"Write a Python function `{signature}` as documented below.\n\n{doc.strip()}"


def code_response(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


def completion_messages(prompt: str) -> list[dict]:
    """HumanEval's chat request for a function whose signature + docstring are ``prompt``."""
    from domainspec.eval.humaneval import HUMANEVAL
    from domainspec.eval.tasks import Task

    return HUMANEVAL.prompt(Task(task_id="", prompt=prompt), "chat")


def extract_code(response: str) -> str | None:
    """The first fenced code block of a response (an unclosed fence runs to the end); None if none."""
    m = _FENCE.search(response)
    return m.group(1) if m else None
