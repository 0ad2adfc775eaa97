"""pass@k / maj@k / rm@k against hand-computed values."""
from math import comb

import pytest

from domainspec.eval.passk import (accuracy, majority_correct, mean_pass_at_k, pass_at_k,
                                   reward_best_correct)


@pytest.mark.parametrize("n,c,k,expected", [
    (10, 3, 1, 0.3),
    (10, 3, 2, 1 - comb(7, 2) / comb(10, 2)),     # 1 - 21/45 = 0.5333
    (10, 3, 5, 1 - comb(7, 5) / comb(10, 5)),     # 1 - 21/252 = 0.9167
    (10, 3, 8, 1.0),                              # n - c < k: any 8 contain a correct one
    (5, 0, 3, 0.0),
    (5, 5, 1, 1.0),
    (200, 13, 100, 1 - comb(187, 100) / comb(200, 100)),
])
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_pass_at_k_rejects_bad_counts():
    with pytest.raises(ValueError, match="at least 5 samples"):
        pass_at_k(3, 1, 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(3, 4, 1)


def test_mean_pass_at_k():
    assert mean_pass_at_k([(2, 1), (2, 0)], 1) == pytest.approx(0.25)
    assert mean_pass_at_k([(2, 1), (2, 0)], 2) == pytest.approx(0.5)
    assert mean_pass_at_k([(2, 1), (1, 0)], 2) is None   # a task with fewer than k samples
    assert accuracy([True, False, False, True]) == 0.5


def exact_vote(answers):
    counts: dict = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
    return max(counts, key=lambda a: counts[a]) if counts else None


def test_majority_and_reward_best():
    answers, correct = ["7", "12", "12", None], [False, True, True, False]
    assert majority_correct(answers, correct, 4, vote=exact_vote) is True
    assert majority_correct(answers, correct, 1, vote=exact_vote) is False      # first sample only: "7"
    assert majority_correct([None, None], [False, False], 2, vote=exact_vote) is False
    # the vote may return a normalized representative: correctness via the equivalence check
    assert majority_correct(["0.5", "1/2"], [True, True], 2, vote=lambda a: "\\frac12",
                            equivalent=lambda a, b: True) is True
    scores = [0.1, 0.9, 0.5, 0.95]
    assert reward_best_correct(scores, [False, True, False, False], 2) is True   # best of first 2: 0.9
    assert reward_best_correct(scores, [False, True, False, False], 4) is False  # 0.95 is wrong
