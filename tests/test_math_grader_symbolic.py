"""Strict grader on symbolic answers: rearranged expressions, constants of integration, "and" lists
(seen on Qwen2.5-Math-Instruct replies to College Math / Minerva Math), the numeric spot check of
``eval/grader/spotcheck.py`` and its time limit."""
import time

import pytest

from domainspec.eval.grader.equiv import functions_equal
from domainspec.eval.grader.latex import latex_to_sympy
from domainspec.eval.grader.math_grader import is_equiv, normalize_answer
from domainspec.eval.grader.pool import check_body
from domainspec.eval.grader.spotcheck import spot_check

LIMIT_S = 2.0

SYMBOLIC = [
    # (prediction, gold, equal) in strict mode
    # rearranged, factored / expanded
    (r"\frac{1}{m}t", r"\frac{t}{m}", True),
    (r"\frac{m}{t}", r"\frac{t}{m}", False),
    (r"\frac{1}{2}(e^{at}+e^{-at})", r"\cosh(at)", True),
    (r"\sinh(at)", r"\cosh(at)", False),
    (r"2\pi^2-2\pi", r"2\pi(\pi-1)", True),
    (r"2\pi^2-\pi", r"2\pi(\pi-1)", False),
    (r"x^2+2x+1", r"(x+1)^2", True),
    (r"x^2+2x", r"(x+1)^2", False),
    (r"\frac{1}{3} e^t", r"e^{t}/3", True),
    (r"\frac{1}{3} e^{-t}", r"e^{t}/3", False),
    (r"\frac{\sin 2x}{2}", r"\sin x \cos x", True),
    (r"\tan x", r"\frac{\sin x}{\cos x}", True),
    (r"\log_2 x", r"\frac{\ln x}{\ln 2}", True),
    (r"\frac{x^2-1}{x-1}", r"x+1", True),
    (r"x + 10^{-12}", "x", False),  # a rational function: decided exactly, no tolerance
    (r"\frac{x}{\sqrt{2}-1}", r"(\sqrt{2}+1)x", True),
    (r"\frac{x}{\sqrt{2}-1}", r"(\sqrt{2}-1)x", False),
    (r"e^{ix}", r"\cos x + i\sin x", True),  # contains i: compared on the complex plane
    # the common real domain
    (r"\ln(x^2)", r"2\ln x", True),  # only x > 0 is common
    (r"\sqrt{x}\sqrt{y}", r"\sqrt{xy}", True),
    (r"\sqrt{x^2}", "x", False),
    (r"|x|", "x", False),
    (r"\sqrt{5-x}+\sqrt{x-5}", "0", False),  # empty common domain (only x = 5)
    # constants of integration
    (r"\frac{1}{3}x^3 + C", r"\frac{x^3}{3}+C", True),
    (r"\frac{1}{3}x^3 + c", r"\frac{x^3}{3}+C", True),
    (r"\frac{1}{3}x^3 + K", r"\frac{x^3}{3}+C", True),
    (r"\frac{1}{3}x^3 + C_1", r"\frac{x^3}{3}+C", True),
    (r"\frac{1}{3}x^3 + C", r"\frac{x^3}{3}", True),   # a pred's lone constant against a gold without
    (r"\frac{1}{3}x^3", r"\frac{x^3}{3}+C", False),    # a gold's constant must be answered
    (r"\frac{1}{3}x^3 + x + C", r"\frac{x^3}{3}+C", False),
    (r"\frac{1}{3}x^3 + 5 + C", r"\frac{x^3}{3}", False),  # the difference is not a lone constant
    (r"\sin^2 x + C", r"-\frac{1}{2}\cos 2x + C", True),  # antiderivatives differing by 1/2
    (r"\sin^2 x + C", r"\sin x \cos x + C", False),
    (r"y = \frac{1}{3}x^3 + K", r"y = \frac{x^3}{3} + C", True),
    # "and" / "or" lists, under the bare-list convention (a multiset)
    (r"7 \text{ and } -\frac{29}{3}", r"7,-\frac{29}{3}", True),
    (r"-\frac{29}{3} \text{ and } 7", r"7,-\frac{29}{3}", True),
    (r"7 \text{ and } \frac{29}{3}", r"7,-\frac{29}{3}", False),
    (r"x = 7 \text{ or } x = -\frac{29}{3}", r"7,-\frac{29}{3}", True),
    (r"7 \text{ and } -\frac{29}{3} \text{ and } 1", r"7,-\frac{29}{3}", False),
    # relations keep their rule (proportional lhs - rhs)
    (r"x^2 + y^2 = 1", r"1 - x^2 = y^2", True),
    (r"x^2 + y^2 = 1", r"x^2 + y^2 = 2", False),
]


@pytest.mark.parametrize("pred,gold,equal", SYMBOLIC, ids=[f"{i}" for i in range(len(SYMBOLIC))])
def test_strict_symbolic_table(pred, gold, equal):
    assert is_equiv(pred, gold, "strict") is equal


def test_symbolic_table_is_large_and_balanced():
    assert len(SYMBOLIC) >= 25
    assert sum(e for _, _, e in SYMBOLIC) >= 10 and sum(not e for _, _, e in SYMBOLIC) >= 10


def test_worker_answers_as_the_direct_body():
    """Seeded points: the worker process and this process reach the same verdicts."""
    for pred, gold, equal in SYMBOLIC:
        assert check_body("strict", normalize_answer(pred), normalize_answer(gold)) is equal


def test_spot_check_closes_an_identity_simplify_leaves_open():
    import sympy

    a, b = latex_to_sympy(r"\sqrt{x+2\sqrt{x-1}}"), latex_to_sympy(r"\sqrt{x-1}+1")  # for x >= 1
    assert sympy.simplify(a - b) != 0
    assert spot_check(a, b) is True and functions_equal(a, b) is True
    assert spot_check(a, latex_to_sympy(r"\sqrt{x-1}+1.000001")) is False
    assert is_equiv(r"\sqrt{x+2\sqrt{x-1}}", r"\sqrt{x-1}+1") is True


def test_spot_check_is_undecided_without_enough_valid_points():
    a, b = latex_to_sympy(r"\sqrt{5-x}"), latex_to_sympy(r"\sqrt{x-5}")
    assert spot_check(a, b) is None


@pytest.mark.parametrize("pred,gold", [
    (r"10^{10^{10}}x", "x"),                                   # sympy builds a 10^10-digit integer
    (r"2^{2^{2^{2^{2^{x}}}}}", r"2^{2^{2^{2^{2^{x}}}}}+1"),    # the spot check bounds its own work
    (r"(x+y+z+w)^{40}", r"(x+y+z+w)^{39}x + (x+y+z+w)^{39}(y+z+w+1)"),  # too big to expand
])
def test_pathological_symbolic_pair_within_limit(pred, gold):
    is_equiv(f"x+{time.monotonic_ns()}", "x", timeout_s=60)  # the worker is started outside the timing
    start = time.monotonic()
    result = is_equiv(pred, gold, "strict", timeout_s=LIMIT_S)
    assert result is False and time.monotonic() - start < LIMIT_S + 1.0
