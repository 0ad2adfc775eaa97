"""Templated arithmetic/algebra word problems with step-by-step solutions.

The built-in math corpus (CPT), the Math SFT seed data and a held-out synthetic
test set all come from here, so the whole Math recipe runs offline. Each
:class:`Problem` carries a sympy expression (``check``) that states the problem
independently of the worked solution; :func:`verify_problem` evaluates it with
sympy and compares with ``answer``. Generation verifies every problem.

Usage::

    probs = generate_problems(100, seed=0, difficulty=1)   # deterministic for a seed
    probs[0].question, probs[0].solution                    # solution ends in \\boxed{answer}
    docs = math_corpus_documents(2000, seed=0)              # "Question: ...\\nSolution: ..." texts

``difficulty`` 1 keeps numbers below 10 and solutions to 2-3 short lines, so a
tiny model learns them in minutes on a CPU; higher levels use bigger numbers and
more steps. Problem ``i`` of a seed does not depend on ``n``: the first k
problems of ``generate_problems(n, s)`` equal ``generate_problems(k, s)``.

Not here: grading model answers (``domainspec.eval.grader.math_grader``), competition
level problems.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from math import gcd
from typing import Callable, Iterator, Sequence

KINDS = ("arithmetic", "linear_equation", "fraction", "percentage", "system")


@dataclass(frozen=True)
class Problem:
    question: str
    solution: str  # step-by-step, last line ends with \boxed{answer}
    answer: str  # canonical answer string: an integer ("12", "-3") or a reduced fraction ("7/12")
    kind: str
    difficulty: int = 1
    check: str = ""  # sympy expression stating the problem; see verify_problem

    def to_dict(self) -> dict:
        return asdict(self)


def _hi(d: int) -> int:
    """Largest operand at a difficulty level."""
    return {1: 9, 2: 20, 3: 50, 4: 100}.get(d, 500)


def _boxed(ans: str) -> str:
    return f"The answer is \\boxed{{{ans}}}"


def _coef(a: int) -> str:
    """Coefficient as written before a variable: 1 -> "", -1 -> "-"."""
    return {1: "", -1: "-"}.get(a, str(a))


def _frac(p: int, q: int) -> str:
    g = gcd(p, q)
    p, q = p // g, q // g
    if q < 0:
        p, q = -p, -q
    return str(p) if q == 1 else f"{p}/{q}"


# ------------------------------------------------------------------ generators
# Each returns (question, solution lines, answer, sympy check). The check is an
# expression in the problem's own numbers, written independently of the steps.

_NAMES = ["Ann", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jade", "Kai", "Lena", "Milo", "Nora"]
_ITEMS = [("apples", "bag", "bags"), ("pencils", "box", "boxes"), ("stickers", "sheet", "sheets"),
          ("marbles", "jar", "jars"), ("cookies", "tray", "trays"), ("books", "shelf", "shelves"),
          ("cards", "pack", "packs"), ("eggs", "carton", "cartons")]


def _arithmetic(r: random.Random, d: int):
    hi = _hi(d)
    name = r.choice(_NAMES)
    item, box, boxes = r.choice(_ITEMS)
    a, b, c = r.randint(1, hi), r.randint(2, hi), r.randint(2, hi)
    got = b * c
    total = a + got
    q = f"{name} has {a} {item}. {name} buys {b} {boxes} with {c} {item} in each {box}."
    steps = [f"{name} buys {b} * {c} = {got} {item}.", f"{name} now has {a} + {got} = {total} {item}."]
    expr = f"{a} + {b}*{c}"
    for _ in range(d - 1):  # one more step per level
        if r.random() < 0.5 and total > 1:
            e = r.randint(1, total - 1)
            q += f" Then {name} gives away {e} {item}."
            steps.append(f"After giving away {e}, {name} has {total} - {e} = {total - e} {item}.")
            total -= e
            expr = f"({expr}) - {e}"
        else:
            k, m = r.randint(2, hi), r.randint(2, hi)
            q += f" Then {name} buys {k} more {boxes} with {m} {item} in each {box}."
            steps.append(f"{name} buys {k} * {m} = {k * m} more, so {name} has {total} + {k * m} = "
                         f"{total + k * m} {item}.")
            total += k * m
            expr = f"({expr}) + {k}*{m}"
    q += f" How many {item} does {name} have now?"
    return q, steps, str(total), expr


def _linear(r: random.Random, d: int):
    hi = _hi(d)
    a = r.randint(2, max(2, min(hi, 9 if d == 1 else hi)))
    x = r.randint(1, hi) if d < 3 else r.randint(-hi, hi)
    b = r.randint(1, hi)
    if d >= 2 and r.random() < 0.5:
        b = -b
    c = a * x + b
    bs = f"+ {b}" if b >= 0 else f"- {-b}"
    q = f"Solve for x: {a}x {bs} = {c}."
    move = f"Subtract {b} from both sides" if b >= 0 else f"Add {-b} to both sides"
    steps = [f"{move}: {a}x = {c - b}.", f"Divide both sides by {a}: x = {x}."]
    return q, steps, str(x), f"solve(Eq({a}*x + ({b}), {c}), x)[0]"


def _fraction(r: random.Random, d: int):
    hi = max(4, _hi(d) if d > 1 else 6)
    b, dd = r.randint(2, hi), r.randint(2, hi)
    a, c = r.randint(1, b - 1), r.randint(1, dd - 1)
    op = "+" if d == 1 or r.random() < 0.5 else "-"
    den = b * dd // gcd(b, dd)
    a2, c2 = a * (den // b), c * (den // dd)
    num = a2 + c2 if op == "+" else a2 - c2
    ans = _frac(num, den)
    q = f"What is {a}/{b} {op} {c}/{dd}? Write the answer as a fraction in lowest terms."
    steps = [f"The common denominator is {den}.",
             f"{a}/{b} = {a2}/{den} and {c}/{dd} = {c2}/{den}.",
             f"{a2}/{den} {op} {c2}/{den} = {num}/{den}" + (f" = {ans}." if ans != f"{num}/{den}" else ".")]
    return q, steps, ans, f"Rational({a}, {b}) {op} Rational({c}, {dd})"


def _percentage(r: random.Random, d: int):
    p = r.choice([10, 20, 25, 50] if d == 1 else [5, 10, 15, 20, 25, 30, 40, 50, 60, 75])
    unit = 100 // gcd(p, 100)  # the base must be a multiple of this for an integer answer
    n = unit * r.randint(1, max(1, _hi(d) * (2 if d == 1 else 5) // unit))
    part = p * n // 100
    if d == 1 or r.random() < 0.5:
        q = f"What is {p}% of {n}?"
        steps = [f"{p}% of {n} is {p}/100 * {n} = {part}."]
        return q, steps, str(part), f"Rational({p}, 100) * {n}"
    name = r.choice(_NAMES)
    q = f"A jacket costs ${n}. {name} buys it with a {p}% discount. How many dollars does {name} pay?"
    steps = [f"The discount is {p}/100 * {n} = {part} dollars.", f"{name} pays {n} - {part} = {n - part} dollars."]
    return q, steps, str(n - part), f"{n} - Rational({p}, 100) * {n}"


def _system(r: random.Random, d: int):
    hi = _hi(d)
    x, y = r.randint(1, hi), r.randint(1, hi)
    if d == 1:
        if x < y:
            x, y = y, x
        s, t = x + y, x - y
        q = f"If x + y = {s} and x - y = {t}, what is x?"
        steps = [f"Add the two equations: 2x = {s} + {t} = {s + t}.", f"Divide by 2: x = {x}."]
        return q, steps, str(x), f"solve([Eq(x + y, {s}), Eq(x - y, {t})], [x, y])[x]"
    a, b = r.randint(1, min(hi, 9)), r.randint(1, min(hi, 9))
    c = a * x + b * y
    e = x + y
    if a == b:  # no unique solution: fall back to a determined pair
        return _system(r, 1)
    q = f"If {_coef(a)}x + {_coef(b)}y = {c} and x + y = {e}, what is x?"
    steps = [f"From the second equation, y = {e} - x.",
             f"Substitute: {_coef(a)}x + {b}({e} - x) = {c}, so {_coef(a - b)}x + {b * e} = {c}.",
             f"So {_coef(a - b)}x = {c - b * e}, and x = {x}."]
    return q, steps, str(x), f"solve([Eq({a}*x + {b}*y, {c}), Eq(x + y, {e})], [x, y])[x]"


_GENERATORS: dict[str, Callable[[random.Random, int], tuple]] = {
    "arithmetic": _arithmetic, "linear_equation": _linear, "fraction": _fraction,
    "percentage": _percentage, "system": _system,
}


def verify_problem(p: Problem) -> bool:
    """True iff sympy evaluates ``p.check`` to the value of ``p.answer``."""
    import sympy
    from sympy import Eq, Rational, solve, symbols  # noqa: F401  (names used by check expressions)

    x, y = symbols("x y")
    truth = eval(p.check, {"Eq": Eq, "Rational": Rational, "solve": solve, "x": x, "y": y})  # our own templates only
    return sympy.simplify(sympy.sympify(truth) - sympy.Rational(p.answer)) == 0


def make_problem(seed: int, index: int, kinds: Sequence[str] | None = None, difficulty: int = 1,
                 verify: bool = True) -> Problem:
    """Problem ``index`` of ``seed``; independent of how many problems are drawn."""
    kinds = list(kinds or KINDS)
    r = random.Random(f"math-problem:{seed}:{index}:{difficulty}")
    kind = r.choice(kinds)
    q, steps, ans, check = _GENERATORS[kind](r, difficulty)
    sol = "\n".join(steps + [_boxed(ans)])
    p = Problem(question=q, solution=sol, answer=ans, kind=kind, difficulty=difficulty, check=check)
    if verify and not verify_problem(p):  # a template bug, never the user's fault
        raise AssertionError(f"generated problem fails its sympy check: {p}")
    return p


def generate_problems(n: int, seed: int = 0, kinds: Sequence[str] | None = None, difficulty: int = 1,
                      verify: bool = True) -> list[Problem]:
    """``n`` problems, deterministic for ``seed``; ``kinds`` picks templates (default: all of KINDS)."""
    if kinds is not None:
        bad = [k for k in kinds if k not in _GENERATORS]
        if bad or not kinds:
            raise ValueError(f"unknown problem kinds {bad or kinds}; choose from {list(KINDS)}")
    if difficulty < 1:
        raise ValueError(f"difficulty must be >= 1, got {difficulty}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [make_problem(seed, i, kinds, difficulty, verify) for i in range(n)]


def format_document(p: Problem) -> str:
    """The CPT text form of a problem."""
    return f"Question: {p.question}\nSolution:\n{p.solution}\n"


def math_corpus_documents(n: int = 2000, seed: int = 0, difficulty: int | Sequence[int] = (1, 2, 3),
                          kinds: Sequence[str] | None = None) -> Iterator[str]:
    """``n`` problem+solution texts for continued pretraining, difficulties cycled."""
    levels = [difficulty] if isinstance(difficulty, int) else list(difficulty)
    for i in range(n):
        yield format_document(make_problem(seed, i, kinds, levels[i % len(levels)]))
