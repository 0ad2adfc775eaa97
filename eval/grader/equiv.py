r"""Strict equivalence of two normalized answers (the body of a `strict` check).

``cheap_equiv(pred, gold)`` decides the easy cases without sympy (same text, plain numbers) and
returns None when it cannot; ``strict_equiv(pred, gold)`` decides everything and may be slow, so
``eval/grader/math_grader.py`` runs it under the process-level limit of ``eval/grader/pool.py``.

Rules (what "mathematically sound" means here):
- numbers compare exactly (sympy, constants to 60 digits);
- expressions with free symbols are functions compared on their common real domain (complex
  domain when one contains ``i``): a rational function with rational coefficients exactly
  (``cancel(a - b) == 0``); anything else by the numeric spot check of
  ``eval/grader/spotcheck.py`` (seeded points, skipping those outside the domain), and
  ``simplify(a - b) == 0`` only when it finds too few valid points. So ``\frac{t}{m}`` =
  ``\frac{1}{m}t``, ``\cosh(at)`` = ``\frac{1}{2}(e^{at}+e^{-at})``, ``\ln(x^2)`` = ``2\ln x``
  (only x > 0 is common), but ``\sqrt{x^2}`` != ``x`` and ``|x|`` != ``x``;
- constants of integration: a lone added symbol C, c or K (optionally ``_1``, ``_2``...) beside a
  term with a variable; ``F + C`` equals ``G + K`` when F - G is constant (any names: ``\frac{x^3}{3}
  + C`` = ``\frac13 x^3 + c``, ``\sin^2 x + C`` = ``-\frac12\cos 2x + C``); a pred ``F + C`` equals
  a gold F without one; a gold ``F + C`` rejects a pred without a constant; multiplicative or
  several constants (``C_1 e^x + C_2``) are not renamed;
- a decimal literal is accepted for a non-decimal value only as that value correctly rounded or
  truncated to the literal's own digits, with at least 4 significant digits when the prediction
  is the approximation (``0.0833333`` for ``1/12``, ``2.6667`` for ``8/3``; not ``3.14`` for
  ``\pi``); a decimal gold sets the precision itself (gold ``2.83`` accepts ``2\sqrt{2}``);
- tuples and intervals compare in order with their brackets; bare lists compare in order against a
  tuple and as multisets against a bare list or set; sets and ``\\pm`` expansions as multisets;
  ``and``/``or`` between answers separate a bare list (``7 \\text{ and } -\\frac{29}{3}`` is
  ``7, -\\frac{29}{3}``);
- equations are equal when ``lhs - rhs`` of one is a nonzero constant multiple of the other's;
  inequalities when that multiple is positive and the strictness matches (``5 \\geq x`` = ``x \\leq 5``);
- ``x = 3`` equals ``3`` when the gold is a value; a gold relation ``-2 \\leq x \\leq 7`` accepts
  the interval ``[-2, 7]``, but a gold interval does not accept a relation (convention: the
  question asked for interval notation);
- ``1000,99`` reads as the decimal 1000.99 only against a decimal gold with those digits;
- word answers and choice letters compare as text (case-insensitive for words).
"""
from __future__ import annotations

import re
from fractions import Fraction

from domainspec.eval.grader.normalize import compact, decimal_places, plain_number
from domainspec.eval.grader.spotcheck import sample_values, spot_check
from domainspec.eval.grader.structure import parse_structure

def cheap_equiv(pred: str, gold: str) -> bool | None:
    if compact(pred) == compact(gold):
        return True
    p, g = plain_number(pred), plain_number(gold)
    if p is not None and g is not None:
        return p == g
    return None


def strict_equiv(pred: str, gold: str) -> bool:
    cheap = cheap_equiv(pred, gold)
    if cheap is not None:
        return cheap
    return nodes_equiv(parse_structure(pred), parse_structure(gold))


# ---------------------------------------------------------------- structures
def nodes_equiv(p, g) -> bool:
    pk, gk = p[0], g[0]
    if pk == "labeled" and gk == "labeled":
        return nodes_equiv(p[2], g[2])
    if pk == "labeled":
        return nodes_equiv(p[3] if gk == "rel" else p[2], g)
    if gk == "labeled":
        return nodes_equiv(p, g[3] if pk == "rel" else g[2])
    if pk == "text" or gk == "text":
        return _text_equal(p, g)
    if pk == "expr" and gk == "expr":
        return expr_equal(p[1], g[1])
    if pk == "rel" and gk == "rel":
        return relations_equal(p, g)
    if gk == "rel" and pk in ("seq", "union"):
        interval = relation_to_interval(g)
        return interval is not None and nodes_equiv(p, interval)
    if pk == "list" and gk == "expr":
        return _decimal_comma(p[2], g[1])
    if pk == "seq" and gk == "seq":
        return p[1] == g[1] and p[2] == g[2] and _ordered(p[3], g[3])
    if {pk, gk} == {"list", "seq"}:
        seq = p if pk == "seq" else g
        lst = g if pk == "seq" else p
        return seq[1:3] == ("(", ")") and _ordered(seq[3], lst[1])
    if pk in ("list", "set", "union") and gk in ("list", "set", "union"):
        if "union" in (pk, gk) and pk != gk:
            return False
        if pk == gk == "list" and _ordered(p[1], g[1]):
            return True
        return _multiset(p[1], g[1])
    if pk == "matrix" and gk == "matrix":
        return (len(p[1]) == len(g[1]) and all(len(a) == len(b) for a, b in zip(p[1], g[1]))
                and all(_ordered(a, b) for a, b in zip(p[1], g[1])))
    return False


def _text_equal(p, g) -> bool:
    a, b = compact(_as_text(p)), compact(_as_text(g))
    if len(a) > 1 and len(b) > 1:
        return a.lower() == b.lower()
    return a == b


def _as_text(node) -> str:
    return node[1] if node[0] in ("text", "expr") else repr(node)


def _ordered(a, b) -> bool:
    return len(a) == len(b) and all(nodes_equiv(x, y) for x, y in zip(a, b))


def _multiset(a, b) -> bool:
    if len(a) != len(b):
        return False
    unused = list(b)
    for x in a:
        for j, y in enumerate(unused):
            if nodes_equiv(x, y):
                del unused[j]
                break
        else:
            return False
    return True


def _decimal_comma(raw_list: str, gold: str) -> bool:
    """European decimal comma: ``1000,99`` against the decimal gold ``1000.99``."""
    m = re.fullmatch(r"(-?\d+),(\d+)", compact(raw_list))
    g = plain_number(gold)
    return bool(m) and g is not None and "." in gold and Fraction(f"{m.group(1)}.{m.group(2)}") == g


# ---------------------------------------------------------------- expressions
def _sympify(s: str):
    from domainspec.eval.grader.latex import LatexParseError, latex_to_sympy

    try:
        return latex_to_sympy(s)
    except (LatexParseError, RecursionError):
        return None


# a predicted decimal must carry at least this many significant digits to stand for an exact value
# (2.6667 for 8/3 yes; 3.14 for pi no): fewer digits is a rough estimate, not the answer
_MIN_PRED_DIGITS = 4


def _approx_ok(decimal_text: str, value, is_pred: bool) -> bool:
    """decimal_text is value rounded or truncated to its own number of decimal places."""
    places = decimal_places(decimal_text)
    d = plain_number(decimal_text)
    if places is None or d is None:
        return False
    if is_pred and len(compact(decimal_text).lstrip("-+0.").replace(".", "")) < _MIN_PRED_DIGITS:
        return False
    try:
        v = Fraction(str(value.evalf(places + 25)))
    except (TypeError, ValueError):
        return False
    return abs(v - d) <= Fraction(1, 10 ** places)


def _numbers_close(a, b, digits: int = 60) -> bool | None:
    """Constant expressions: equal to `digits` significant digits (None if not numeric)."""
    import sympy

    if a == b:
        return True
    if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
        return False
    try:
        x, y = complex(a.evalf(digits)), complex(b.evalf(digits))
    except (TypeError, ValueError, OverflowError):
        return None
    scale = max(1.0, abs(x), abs(y))
    return abs(x - y) <= 1e-12 * scale and _confirm_exact(a, b, digits)


def _confirm_exact(a, b, digits: int) -> bool:
    import sympy

    diff = (a - b).evalf(digits)
    try:
        mag = abs(complex(diff))
        ref = max(1.0, abs(complex(a.evalf(digits))))
    except (TypeError, ValueError):
        return False
    return mag <= ref * sympy.Float(10) ** (-(digits - 10))


def expr_equal(pred: str, gold: str) -> bool:
    cheap = cheap_equiv(pred, gold)
    if cheap is not None:
        return cheap
    a, b = _sympify(pred), _sympify(gold)
    if a is None or b is None:
        return False
    if not a.free_symbols and not b.free_symbols:
        if _numbers_close(a, b):
            return True
        pd, gd = decimal_places(pred) is not None, decimal_places(gold) is not None
        if pd != gd:
            # one side is a decimal approximation of the other
            return _approx_ok(pred, b, True) if pd else _approx_ok(gold, a, False)
        return False
    return _with_constants_equal(a, b)


# ---------------------------------------------------------------- functions
# a lone additive constant of integration: C, c, K, optionally with a numeric subscript (C_1)
_CONSTANT_NAME = re.compile(r"[CcK](?:_\d+)?")


def _integration_constant(expr):
    """The symbol C of ``F + C`` when it stands alone in the sum and F has a variable; else None."""
    if not expr.is_Add:
        return None
    lone = [t for t in expr.args if t.is_Symbol and _CONSTANT_NAME.fullmatch(t.name)]
    if len(lone) != 1:
        return None
    rest = expr - lone[0]
    if lone[0] in rest.free_symbols or not rest.free_symbols:
        return None
    return lone[0]


def _with_constants_equal(a, b) -> bool:
    """``F + C`` equals ``G + K`` when F - G is a constant (any constant names); a pred ``F + C``
    equals a gold G that has no constant when F equals G; a gold ``F + C`` needs one in the pred."""
    import sympy

    ca, cb = _integration_constant(a), _integration_constant(b)
    if ca is not None and cb is not None:
        f, g = a - ca, b - cb
        # F - G is constant iff F(x) - F(x') = G(x) - G(x') for fresh copies x' of the variables
        fresh = {s: sympy.Symbol(s.name + "'") for s in f.free_symbols | g.free_symbols}
        return functions_equal(f - f.xreplace(fresh), g - g.xreplace(fresh))
    if ca is not None and ca not in b.free_symbols:
        return functions_equal(a - ca, b)
    return functions_equal(a, b)


def functions_equal(a, b) -> bool:
    """Rational functions with rational coefficients: exactly (``cancel``). Otherwise the numeric
    spot check decides, and ``simplify(a - b) == 0`` only when it finds too few valid points
    (simplify runs last: one that runs over the time limit would leave no answer at all)."""
    import sympy

    d = a - b
    if d == 0:
        return True
    if _plain_rational(d):
        return sympy.cancel(d) == 0
    verdict = spot_check(a, b)
    if verdict is not None:
        return verdict
    return sympy.simplify(d) == 0


def _plain_rational(expr) -> bool:
    """A rational function of its symbols with rational coefficients (``cancel`` decides it exactly;
    it would take sqrt(2) or pi as independent generators) whose expansion stays small."""
    import math

    def degree(node) -> int:  # an upper bound of the total degree of the expansion
        if node.is_Symbol:
            return 1
        if node.is_Rational:
            return 0
        if node.is_Add:
            return max(degree(arg) for arg in node.args)
        if node.is_Mul:
            return sum(degree(arg) for arg in node.args)
        if node.is_Pow and node.exp.is_Integer:
            return degree(node.base) * abs(int(node.exp))
        raise ValueError("not a plain rational function")

    try:
        d = degree(expr)
    except ValueError:
        return False
    return math.comb(d + len(expr.free_symbols), len(expr.free_symbols)) <= _MAX_EXACT_TERMS


# monomials of the degree bound: (x+y+z+w)^10 (1001) cancels in 0.07 s, ^30 (46376) takes 1.5 s
_MAX_EXACT_TERMS = 2000


# ---------------------------------------------------------------- relations
_FLIP = {"<": ">", ">": "<", "\\leq": "\\geq", "\\geq": "\\leq", "=": "=", "\\neq": "\\neq"}


def _canonical(lhs: str, op: str, rhs: str):
    """(difference expr, op) with op in {=, !=, >, >=}: `a <= b` becomes `b - a >= 0`."""
    a, b = _sympify(lhs), _sympify(rhs)
    if a is None or b is None:
        return None
    if op in ("<", "\\leq"):
        return b - a, _FLIP[op]
    return a - b, op


def _proportional(d1, d2, positive: bool) -> bool:
    ratios = [x / y for (x, y), _ in sample_values((d1, d2)) if abs(y) > 1e-12]
    if len(ratios) < 2:
        return False
    r0 = ratios[0]
    if abs(r0) < 1e-12 or abs(complex(r0).imag) > 1e-9 or (positive and complex(r0).real <= 0):
        return False
    return all(abs(r - r0) <= 1e-9 * abs(r0) for r in ratios)


def relations_equal(p, g) -> bool:
    (ps, pops), (gs, gops) = p[1:], g[1:]
    if len(pops) != len(gops):
        return False
    candidates = [(ps, pops)]
    # "7 > x > 2" is "2 < x < 7"
    candidates.append((tuple(reversed(ps)), tuple(_FLIP[o] for o in reversed(pops))))
    for sides, ops in candidates:
        if all(_one_relation_equal(sides[i], ops[i], sides[i + 1], gs[i], gops[i], gs[i + 1])
               for i in range(len(ops))):
            return True
    return False


def _one_relation_equal(pl, pop, pr, gl, gop, gr) -> bool:
    a, b = _canonical(pl, pop, pr), _canonical(gl, gop, gr)
    if a is None or b is None or a[1] != b[1]:
        return False
    if a[1] in ("=", "\\neq", "\\approx"):
        return _proportional(a[0], b[0], positive=False)
    return _proportional(a[0], b[0], positive=True)


def relation_to_interval(rel):
    """``a < x \\leq b`` -> ("seq", "(", "]", ...); ``x > 5`` -> (5, \\infty); else None."""
    sides, ops = rel[1], rel[2]
    lower_ops, upper_ops = ("<", "\\leq"), (">", "\\geq")
    if len(ops) == 2 and ops[0] in lower_ops and ops[1] in lower_ops:
        lo, hi, lo_op, hi_op = sides[0], sides[2], ops[0], ops[1]
    elif len(ops) == 2 and ops[0] in upper_ops and ops[1] in upper_ops:
        lo, hi, lo_op, hi_op = sides[2], sides[0], _FLIP[ops[1]], _FLIP[ops[0]]
    elif len(ops) == 1 and ops[0] in lower_ops + upper_ops:
        var_left = _sympify(sides[1]) is not None and not _sympify(sides[1]).free_symbols
        op = ops[0] if var_left else _FLIP[ops[0]]
        bound = sides[1] if var_left else sides[0]
        if op in lower_ops:
            return ("seq", "(", ")" if op == "<" else "]", (("expr", "-\\infty"), ("expr", bound)))
        return ("seq", "(" if op == ">" else "[", ")", (("expr", bound), ("expr", "\\infty")))
    else:
        return None
    return ("seq", "(" if lo_op == "<" else "[", ")" if hi_op == "<" else "]",
            (("expr", lo), ("expr", hi)))
