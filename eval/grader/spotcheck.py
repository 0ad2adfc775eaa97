"""Numeric spot check: are two sympy expressions equal as functions on their common domain?

``spot_check(a, b)`` evaluates both at up to 64 seeded pseudo-random points (the same points in
every process), 30 decimal digits. Rules:
- magnitudes are log-uniform in [0.2, 8]; even points have every coordinate positive (the common
  domain of sqrt and log), odd points at least one negative one, so ``|x|`` and ``sqrt(x^2)`` are
  told from ``x``;
- real mode unless an expression contains ``i`` (then complex): in real mode every intermediate
  must be real, so a point where a subexpression is undefined, non-real, infinite or beyond 1e300
  is skipped;
- equal when 8 valid points agree to ``|a - b| <= 1e-9 max(|a|, |b|) + 1e-20 * (largest
  intermediate)``; not equal at the first valid point that disagrees; undecided (None) when fewer
  than 8 of the 64 points are valid, and the caller decides another way.
``sample_values(exprs)`` gives the values at the valid points (``eval/grader/equiv.py`` uses them
to compare relations).
"""
from __future__ import annotations

import functools

_SEED = 20240611
_MAX_POINTS = 64
_MIN_VALID = 8          # valid points that must agree before two expressions count as equal
_DPS = 30               # working precision (decimal digits) of every evaluation
_REL_TOL = 1e-9         # |a - b| <= _REL_TOL * max(|a|, |b|) + _ROUNDOFF * (largest intermediate)
_ROUNDOFF = 1e-20       # allowance for cancellation at _DPS digits
_HUGE = 1e300           # an intermediate beyond this makes the point invalid (and bounds the work)


class _Undefined(ArithmeticError):
    """The expression has no (real) value at this point."""


def _points(n: int):
    import math
    import random

    rng = random.Random(_SEED + n)
    for k in range(_MAX_POINTS):
        point = [math.exp(rng.uniform(math.log(0.2), math.log(8.0))) for _ in range(n)]
        if k % 2 and n:
            signs = [rng.choice((1, -1)) for _ in range(n)]
            if -1 not in signs:
                signs[rng.randrange(n)] = -1
            point = [v * sign for v, sign in zip(point, signs)]
        yield tuple(point)


def _compile(expr, real: bool, seen: list):
    """A function env -> mpmath value of expr; raises _Undefined outside the (real) domain.
    Real mode: every intermediate must be real, so sqrt(x)sqrt(y) is undefined at x, y < 0 and
    ln(x^2) vs 2 ln x compares only where x > 0. `seen[0]` keeps the largest magnitude met."""
    import mpmath
    import sympy

    def check(v):
        if isinstance(v, mpmath.mpc):
            if v.imag == 0:
                v = v.real
            elif real:
                raise _Undefined
        if not mpmath.isfinite(v) or abs(v) > _HUGE:
            raise _Undefined
        seen[0] = max(seen[0], abs(v))
        return v

    if expr.is_Symbol:
        return lambda env: env[expr]
    if not expr.free_symbols:
        try:
            value = check(_to_mp(expr))
        except _Undefined:
            return _raise_undefined
        return lambda env: value
    args = [_compile(arg, real, seen) for arg in expr.args]
    if expr.is_Add:
        op = lambda *v: mpmath.fsum(v)  # noqa: E731
    elif expr.is_Mul:
        op = lambda *v: mpmath.fprod(v)  # noqa: E731
    elif expr.is_Pow:
        op = mpmath.power
    else:
        op = _mpmath_ops().get(type(expr).__name__)
        if op is None:  # any other function: sympy evaluates it on the number arguments
            op = lambda *v: _to_mp(expr.func(*map(sympy.sympify, v)))  # noqa: E731
    return lambda env: check(op(*(f(env) for f in args)))


def _to_mp(number):
    import mpmath
    import sympy

    re_, im_ = number.evalf(_DPS).as_real_imag()
    try:
        return mpmath.mpc(*(mpmath.mpf(sympy.Float(part, _DPS)._mpf_) for part in (re_, im_)))
    except (TypeError, ValueError, AttributeError):
        raise _Undefined from None


def _raise_undefined(env):
    raise _Undefined


@functools.lru_cache(maxsize=None)
def _mpmath_ops() -> dict:
    """sympy function name -> mpmath function (same principal branches)."""
    import mpmath

    names = ["sin", "cos", "tan", "sec", "csc", "cot", "asin", "acos", "atan", "acot", "sinh", "cosh",
             "tanh", "coth", "sech", "csch", "asinh", "acosh", "atanh", "exp", "log", "floor",
             "factorial", "binomial", "gamma", "sign"]
    ops = {name: getattr(mpmath, name) for name in names}
    ops.update(Abs=abs, ceiling=mpmath.ceil)
    return ops


def sample_values(exprs) -> list:
    """[(values of exprs, largest magnitude met)] at each valid point, in order. Real mode unless
    an expression contains i; points where a value is undefined or (real mode) non-real are skipped."""
    import mpmath
    import sympy

    exprs = list(exprs)
    symbols = sorted(set().union(*(e.free_symbols for e in exprs)), key=lambda s: s.name)
    real = not any(e.has(sympy.I) for e in exprs)
    seen = [0]
    out = []
    with mpmath.workdps(_DPS):
        funcs = [_compile(e, real, seen) for e in exprs]
        for point in _points(len(symbols)):
            env = {s: mpmath.mpf(v) for s, v in zip(symbols, point)}
            seen[0] = mpmath.mpf(0)
            try:
                out.append(([f(env) for f in funcs], seen[0]))
            except (ArithmeticError, ValueError, TypeError):
                continue
            if len(out) >= _MIN_VALID:
                break
    return out


def spot_check(a, b) -> bool | None:
    """False when a and b differ at a valid point; True when they agree at _MIN_VALID valid points;
    None when fewer points are valid (the common real domain is small or empty)."""
    values = sample_values((a, b))
    for (x, y), size in values:
        if abs(x - y) > _REL_TOL * max(abs(x), abs(y)) + _ROUNDOFF * size:
            return False
    return True if len(values) >= _MIN_VALID else None
