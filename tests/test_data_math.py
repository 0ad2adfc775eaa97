"""Generated math problems: sympy-verified answers, determinism, difficulty, corpus form."""
from __future__ import annotations

import re

import pytest

from domainspec.common.data.builtin.math_problems import (KINDS, Problem, generate_problems, math_corpus_documents,
                                             verify_problem)


@pytest.mark.parametrize("difficulty", [1, 2, 3])
def test_answers_verified_by_sympy_and_boxed(difficulty):
    probs = generate_problems(150, seed=7, difficulty=difficulty)
    assert {p.kind for p in probs} == set(KINDS)
    for p in probs:
        assert verify_problem(p), p
        assert p.solution.rstrip().endswith(f"\\boxed{{{p.answer}}}")
        assert re.fullmatch(r"-?\d+(/\d+)?", p.answer), p.answer


def test_verify_rejects_a_wrong_answer():
    p = generate_problems(1, seed=0)[0]
    wrong = Problem(p.question, p.solution, str(int(p.answer.split("/")[0]) + 1), p.kind, p.difficulty, p.check)
    assert not verify_problem(wrong)


def test_deterministic_and_prefix_stable():
    a = generate_problems(40, seed=3)
    assert a == generate_problems(40, seed=3)
    assert a[:10] == generate_problems(10, seed=3)
    assert a != generate_problems(40, seed=4)


def test_level1_is_small_and_short():
    for p in generate_problems(200, seed=1, difficulty=1):
        nums = [int(x) for x in re.findall(r"\d+", p.question)]
        assert max(nums) <= 100, p.question  # operands < 10 (percent bases and sums a bit larger)
        assert len(p.solution.splitlines()) <= 4
    hard = generate_problems(200, seed=1, difficulty=3)
    assert sum(len(p.solution) for p in hard) > sum(len(p.solution) for p in generate_problems(200, 1))


def test_kinds_filter_and_bad_args():
    assert {p.kind for p in generate_problems(30, seed=0, kinds=["fraction"])} == {"fraction"}
    with pytest.raises(ValueError, match="unknown problem kinds"):
        generate_problems(3, kinds=["geometry"])
    with pytest.raises(ValueError, match="difficulty"):
        generate_problems(3, difficulty=0)


def test_corpus_documents():
    docs = list(math_corpus_documents(30, seed=0))
    assert len(docs) == 30 and all(d.startswith("Question: ") and "\\boxed{" in d for d in docs)
