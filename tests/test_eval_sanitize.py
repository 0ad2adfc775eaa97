"""Table-driven cases for eval/code_sanitize.py: raw reply -> expected code."""
import pytest

from domainspec.eval.code_sanitize import code_blocks, keep_definitions, sanitize

PROMPT = 'from typing import List\n\n\ndef add(xs: List[int]) -> int:\n    """Sum."""\n'
HELPER_PROMPT = ('def enc(s):\n    return s[::-1]\n\n\ndef dec(s):\n    """Inverse of enc."""\n')

CASES = [
    # (id, completion, entry_point, prompt, expected)
    ("raw continuation is prompt + completion, untouched",
     "    return sum(xs)\n\nprint(1)\n", "add", PROMPT, PROMPT + "    return sum(xs)\n\nprint(1)\n"),
    ("fenced full function gets the prompt's imports; example calls dropped",
     "Here you go:\n```python\ndef add(xs: List[int]) -> int:\n    return sum(xs)\n\nprint(add([1]))\n```\nDone.",
     "add", PROMPT, "from typing import List\n\ndef add(xs: List[int]) -> int:\n    return sum(xs)\n"),
    ("block that defines the entry point wins over an earlier example block",
     "Usage:\n```python\nadd([1, 2])\n```\nCode:\n```py\ndef add(xs):\n    return sum(xs)\n```",
     "add", None, "def add(xs):\n    return sum(xs)\n"),
    ("main guard, asserts and input() calls removed",
     "```python\nimport math\n\ndef f(x):\n    return math.sqrt(x)\n\nassert f(4) == 2\n"
     "if __name__ == '__main__':\n    print(f(int(input())))\n```",
     "f", None, "import math\n\ndef f(x):\n    return math.sqrt(x)\n"),
    ("import from another fenced block kept when used",
     "First:\n```python\nimport re\n```\nThen:\n```python\ndef g(s):\n    return re.sub('a', 'b', s)\n```",
     "g", None, "import re\n\ndef g(s):\n    return re.sub('a', 'b', s)\n"),
    ("unused import from another block not added",
     "```python\nimport os\n```\n```python\ndef g(s):\n    return s\n```", "g", None, "def g(s):\n    return s\n"),
    ("unclosed fence from a truncated reply",
     "Sure!\n```python\ndef h(n):\n    return n + 1\n", "h", None, "def h(n):\n    return n + 1\n"),
    ("prompt helper functions kept for the restated entry point",
     "```python\ndef dec(s):\n    return enc(s)\n```", "dec", HELPER_PROMPT,
     "def enc(s):\n    return s[::-1]\n\ndef dec(s):\n    return enc(s)\n"),
    ("bare code with prose around it",
     "Here is my solution:\ndef h(n):\n    return n * 2\nThis doubles n.", "h", None, "def h(n):\n    return n * 2\n"),
    ("bare restated function without fences, HumanEval prompt",
     "def add(xs: List[int]) -> int:\n    return sum(xs)\n", "add", PROMPT,
     "from typing import List\n\ndef add(xs: List[int]) -> int:\n    return sum(xs)\n"),
    ("fenced continuation (body only) appended to the prompt",
     "```python\n    return sum(xs)\n```", "add", PROMPT, PROMPT + "    return sum(xs)\n"),
    ("MBPP raw code returned as is (no prompt)",
     "R = 3\ndef f(a):\n\treturn a + R", "f", None, "R = 3\ndef f(a):\n\treturn a + R"),
    ("decorators and classes kept",
     "```python\nimport functools\n@functools.lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n"
     "class A:\n    pass\nprint(fib(3))\n```", "fib", None,
     "import functools\n@functools.lru_cache(None)\ndef fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n"
     "class A:\n    pass\n"),
    ("unparseable block returned as is (execution reports the error)",
     "```python\ndef k(:\n```", "k", None, "def k(:\n"),
]


@pytest.mark.parametrize("completion,entry,prompt,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_sanitize_table(completion, entry, prompt, expected):
    assert sanitize(completion, entry_point=entry, prompt=prompt) == expected


def test_sanitized_code_runs():
    ns: dict = {}
    exec(sanitize(CASES[1][1], "add", PROMPT), ns)
    assert ns["add"]([1, 2, 3]) == 6


def test_code_blocks_and_keep_definitions():
    assert code_blocks("a\n```\nx = 1\n```\nb\n```python\ny = 2\n```") == ["x = 1\n", "y = 2\n"]
    assert keep_definitions("x = 1\nprint(x)\ntry:\n    import numpy\nexcept ImportError:\n    pass\n") == \
        "x = 1\ntry:\n    import numpy\nexcept ImportError:\n    pass\n"
