"""Generated small programming tasks with tests: the offline training pool and held-out set.

Each task *family* is a template ("return the sum of the even numbers in a list",
"clamp x to [lo, hi]", a fizzbuzz-like, ...) with slots (function name, argument
name, constants). An instance fills the slots and carries a HumanEval-style prompt
(signature + docstring), a reference body, and assert tests whose expected values
come from a separate Python reference (so a wrong body template fails its own tests).

The slot space of every family is split by a hash of the filled slots into a
training side and a held-out side, so held-out tasks share the templates of the
training pool but never one of its instances (different names and/or constants):
passing them needs the model to have learned the template, not the string.

Usage::

    train = generate_tasks(2000, seed=0, split="train")
    heldout = generate_tasks(100, seed=1, split="heldout")
    write_humaneval_jsonl(heldout, "toy_heldout.jsonl")   # score with benchmark "humaneval" + --data

Not here: execution (coder/exec_filter.py runs tests in the sandbox) and SFT rendering.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

Split = Literal["train", "heldout"]
HELDOUT_PERCENT = 20  # share of each family's slot space reserved for the held-out side
# Constants are single digits: the tiny default model (Qwen's tokenizer splits numbers into
# digits) then copies one token per constant, which it learns within minutes on a CPU.


@dataclass(frozen=True)
class ToyTask:
    task_id: str
    family: str
    entry_point: str
    args: tuple[str, ...]
    prompt: str                    # signature + docstring, HumanEval style, ends with a newline
    canonical_solution: str        # indented body; prompt + canonical_solution is the whole function
    tests: tuple[tuple[tuple, Any], ...] = field(repr=False)  # (call args, expected)
    key: str = ""                  # the filled slots; the held-out split is decided on this

    @property
    def signature(self) -> str:
        return f"def {self.entry_point}({', '.join(self.args)}):"

    @property
    def function_code(self) -> str:
        """The function without its docstring: what an SFT response holds."""
        return f"{self.signature}\n{self.canonical_solution}"

    @property
    def test_code(self) -> str:
        """HumanEval-style ``check(candidate)``."""
        lines = ["def check(candidate):"]
        for call, expected in self.tests:
            lines.append(f"    assert candidate({', '.join(repr(a) for a in call)}) == {expected!r}")
        return "\n".join(lines) + "\n"

    def program(self, function_code: str | None = None) -> str:
        """A complete program: the function (reference by default), the checks and the call."""
        code = self.function_code if function_code is None else function_code
        return f"{code}\n\n{self.test_code}\ncheck({self.entry_point})\n"

    def to_humaneval(self) -> dict:
        return {"task_id": self.task_id, "prompt": self.prompt, "entry_point": self.entry_point,
                "canonical_solution": self.canonical_solution, "test": self.test_code}


# ---------------------------------------------------------------- slot pools

NUM_ARGS = ("x", "n", "num")
LIST_ARGS = ("nums", "xs", "items")
STR_ARGS = ("s", "text", "word")
WORDS = ("apple", "banana", "cherry", "dog", "echo", "fox", "grape", "hello", "ice", "jazz",
         "kiwi", "lemon", "moon", "night", "ocean", "pizza", "queen", "river", "sun", "tree")
LETTERS = "abcdefghilmnoprstu"
TAGS = ("Fizz", "Buzz", "Ping", "Pong", "Foo", "Bar", "Tick", "Tock", "Zip", "Zap")


def _ints(rng: random.Random, n: int = 6, lo: int = -20, hi: int = 30) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(0, n))]


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(LETTERS) for _ in range(rng.randint(0, 9)))


@dataclass(frozen=True)
class Family:
    """A task template: ``slots(rng)`` draws the slots, the rest render and check them."""
    name: str
    names: tuple[str, ...]                       # entry-point name templates, may use {k}
    arg_pool: tuple[str, ...]
    doc: str                                     # docstring template ({a} = argument, other slots)
    body: str                                    # body template, indented by 4
    ref: Callable[..., Any]                      # reference semantics: ref(slots, *call_args)
    inputs: Callable[[random.Random], tuple]     # one random call
    consts: Callable[[random.Random], dict] = lambda rng: {}
    extra_args: tuple[str, ...] = ()             # further parameters after the main one


def _k(lo: int, hi: int) -> Callable[[random.Random], dict]:
    return lambda rng: {"k": rng.randint(lo, hi)}


def _fizz(rng: random.Random) -> dict:
    k1, k2 = rng.sample(range(2, 10), 2)
    w1, w2 = rng.sample(TAGS, 2)
    return {"k1": k1, "k2": k2, "w1": w1, "w2": w2}


def _clamp(rng: random.Random) -> dict:
    lo = rng.randint(-9, 5)
    return {"lo": lo, "hi": rng.randint(lo + 1, 9)}


def _fizz_ref(c, n):
    return c["w1"] if n % c["k1"] == 0 else c["w2"] if n % c["k2"] == 0 else str(n)


_NUM = lambda rng: (rng.randint(-50, 50),)  # noqa: E731
_POS = lambda rng: (rng.randint(1, 60),)  # noqa: E731
_LIST = lambda rng: (_ints(rng),)  # noqa: E731
_NELIST = lambda rng: (_ints(rng) + [rng.randint(-20, 30)],)  # noqa: E731
_STR = lambda rng: (_sentence(rng),)  # noqa: E731
_WORD = lambda rng: (_word(rng),)  # noqa: E731

FAMILIES: tuple[Family, ...] = (
    Family("add_const", ("add_{k}", "plus_{k}", "increase_by_{k}"), NUM_ARGS,
           "Return {a} plus {k}.", "return {a} + {k}", lambda c, x: x + c["k"], _NUM, _k(1, 9)),
    Family("mul_const", ("times_{k}", "multiply_by_{k}", "scale_{k}"), NUM_ARGS,
           "Return {a} multiplied by {k}.", "return {a} * {k}", lambda c, x: x * c["k"], _NUM, _k(2, 9)),
    Family("sub_const", ("minus_{k}", "subtract_{k}", "decrease_by_{k}"), NUM_ARGS,
           "Return {a} minus {k}.", "return {a} - {k}", lambda c, x: x - c["k"], _NUM, _k(1, 9)),
    Family("is_multiple", ("is_multiple_of_{k}", "divisible_by_{k}", "check_mod_{k}"), NUM_ARGS,
           "Return True if {a} is divisible by {k}, else False.", "return {a} % {k} == 0",
           lambda c, x: x % c["k"] == 0, _NUM, _k(2, 9)),
    Family("clamp", ("clamp", "clip_value", "bound"), NUM_ARGS,
           "Clamp {a} to the range [{lo}, {hi}].", "return max({lo}, min({hi}, {a}))",
           lambda c, x: max(c["lo"], min(c["hi"], x)), lambda rng: (rng.randint(-25, 25),), _clamp),
    Family("sum_even", ("sum_even", "even_total", "sum_of_evens"), LIST_ARGS,
           "Return the sum of the even numbers in {a}.", "return sum(x for x in {a} if x % 2 == 0)",
           lambda c, xs: sum(x for x in xs if x % 2 == 0), _LIST),
    Family("sum_odd", ("sum_odd", "odd_total", "sum_of_odds"), LIST_ARGS,
           "Return the sum of the odd numbers in {a}.", "return sum(x for x in {a} if x % 2 == 1)",
           lambda c, xs: sum(x for x in xs if x % 2 == 1), _LIST),
    Family("count_greater", ("count_above_{k}", "count_greater", "num_over_{k}"), LIST_ARGS,
           "Return how many numbers in {a} are greater than {k}.", "return sum(1 for x in {a} if x > {k})",
           lambda c, xs: sum(1 for x in xs if x > c["k"]), _LIST, _k(0, 9)),
    Family("filter_less", ("below_{k}", "filter_less", "keep_under_{k}"), LIST_ARGS,
           "Return a list of the numbers in {a} that are less than {k}.", "return [x for x in {a} if x < {k}]",
           lambda c, xs: [x for x in xs if x < c["k"]], _LIST, _k(0, 9)),
    Family("scale_list", ("scale_all", "times_each_{k}", "multiply_all"), LIST_ARGS,
           "Return a list with every number in {a} multiplied by {k}.", "return [x * {k} for x in {a}]",
           lambda c, xs: [x * c["k"] for x in xs], _LIST, _k(2, 9)),
    Family("add_list", ("add_to_all", "shift_each_{k}", "offset_all"), LIST_ARGS,
           "Return a list with {k} added to every number in {a}.", "return [x + {k} for x in {a}]",
           lambda c, xs: [x + c["k"] for x in xs], _LIST, _k(1, 9)),
    Family("max_list", ("largest", "max_value", "biggest"), LIST_ARGS,
           "Return the largest number in {a}.", "return max({a})", lambda c, xs: max(xs), _NELIST),
    Family("min_list", ("smallest", "min_value", "lowest"), LIST_ARGS,
           "Return the smallest number in {a}.", "return min({a})", lambda c, xs: min(xs), _NELIST),
    Family("first_n", ("first_{k}", "head_{k}", "take_{k}"), LIST_ARGS,
           "Return the first {k} elements of {a}.", "return {a}[:{k}]", lambda c, xs: xs[:c["k"]], _LIST,
           _k(1, 5)),
    Family("count_vowels", ("count_vowels", "vowel_count", "num_vowels"), STR_ARGS,
           "Return the number of vowels in {a}.", "return sum(1 for c in {a} if c in 'aeiou')",
           lambda c, s: sum(1 for ch in s if ch in "aeiou"), _WORD),
    Family("count_char", ("count_{c}", "occurrences_of_{c}", "num_{c}"), STR_ARGS,
           "Return how many times the letter '{c}' appears in {a}.", "return {a}.count('{c}')",
           lambda c, s: s.count(c["c"]), _WORD, lambda rng: {"c": rng.choice(LETTERS)}),
    Family("reverse_words", ("reverse_words", "flip_words", "words_backwards"), STR_ARGS,
           "Return {a} with the order of its words reversed.", "return ' '.join(reversed({a}.split()))",
           lambda c, s: " ".join(reversed(s.split())), _STR),
    Family("reverse_string", ("reverse", "reversed_text", "backwards"), STR_ARGS,
           "Return {a} reversed.", "return {a}[::-1]", lambda c, s: s[::-1], _WORD),
    Family("repeat", ("repeat_{k}", "times_text_{k}", "copies_{k}"), STR_ARGS,
           "Return {a} repeated {k} times.", "return {a} * {k}", lambda c, s: s * c["k"], _WORD, _k(2, 5)),
    Family("starts_with", ("starts_with_{p}", "has_prefix_{p}", "begins_{p}"), STR_ARGS,
           "Return True if {a} starts with '{p}', else False.", "return {a}.startswith('{p}')",
           lambda c, s: s.startswith(c["p"]), _WORD, lambda rng: {"p": rng.choice(LETTERS)}),
    Family("fizz_like", ("fizz_like", "label_number", "tag_number"), NUM_ARGS,
           "Return '{w1}' if {a} is divisible by {k1}, else '{w2}' if {a} is divisible by {k2}, "
           "else {a} as a string.",
           "if {a} % {k1} == 0:\n        return '{w1}'\n    if {a} % {k2} == 0:\n        return '{w2}'\n"
           "    return str({a})", _fizz_ref, _POS, _fizz),
    Family("larger", ("larger", "max_of_two", "bigger"), ("a", "x", "m", "p"),
           "Return the larger of {a} and {b}.", "return max({a}, {b})", lambda c, x, y: max(x, y),
           lambda rng: (rng.randint(-30, 30), rng.randint(-30, 30)), extra_args=("{b}",)),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}
_SECOND_ARG = {"a": "b", "x": "y", "m": "n", "p": "q"}


def _split_of(key: str) -> Split:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
    return "heldout" if h % 100 < HELDOUT_PERCENT else "train"


def _instance(family: Family, rng: random.Random, n_tests: int) -> ToyTask:
    consts = family.consts(rng)
    arg = rng.choice(family.arg_pool)
    slots = {"a": arg, "b": _SECOND_ARG.get(arg, "b"), **consts}
    name = rng.choice(family.names).format(**slots)
    args = (arg,) + tuple(x.format(**slots) for x in family.extra_args)
    doc = family.doc.format(**slots)
    body = "    " + family.body.format(**slots) + "\n"
    prompt = f"def {name}({', '.join(args)}):\n    \"\"\"{doc}\n    \"\"\"\n"
    key = json.dumps([family.name, name, args, sorted(consts.items())])
    tests, seen = [], set()
    for _ in range(n_tests * 4):  # distinct calls; small input spaces may give fewer
        call = family.inputs(rng)
        if repr(call) in seen:
            continue
        seen.add(repr(call))
        tests.append((call, family.ref(consts, *call)))
        if len(tests) == n_tests:
            break
    return ToyTask("", family.name, name, args, prompt, body, tuple(tests), key)


def generate_tasks(n: int, seed: int = 0, split: Split = "train", families: Sequence[str] | None = None,
                   n_tests: int = 5) -> list[ToyTask]:
    """``n`` distinct tasks of one split, round-robin over families, deterministic for ``seed``.

    Task ids are ``Toy/<split>/<i>``. Instances are distinct within the list; the two
    splits never share an instance (the split is a hash of the filled slots).
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    unknown = set(families or ()) - set(FAMILY_BY_NAME)
    if unknown:
        raise ValueError(f"unknown toy task families {sorted(unknown)}; known: {sorted(FAMILY_BY_NAME)}")
    fams = list(FAMILIES) if families is None else [FAMILY_BY_NAME[f] for f in families]
    rng = random.Random(f"toy:{seed}:{split}")
    out: list[ToyTask] = []
    seen: set[str] = set()
    misses = 0
    while len(out) < n:
        fam = fams[len(out) % len(fams)] if misses < 50 else rng.choice(fams)
        task = _instance(fam, rng, n_tests)
        if task.key in seen or _split_of(task.key) != split:
            misses += 1
            if misses > 200 * max(n, 1):
                raise ValueError(f"could only make {len(out)} distinct {split} tasks of {n} requested")
            continue
        misses = 0
        seen.add(task.key)
        out.append(ToyTask(f"Toy/{split}/{len(out)}", task.family, task.entry_point, task.args, task.prompt,
                           task.canonical_solution, task.tests, task.key))
    return out


def write_humaneval_jsonl(tasks: Sequence[ToyTask], path: str | Path) -> Path:
    """HumanEval-format JSONL (task_id, prompt, entry_point, canonical_solution, test)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w") as f:
        for t in tasks:
            f.write(json.dumps(t.to_humaneval()) + "\n")
    return p
