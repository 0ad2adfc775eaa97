"""The one math answer grader of the project: GSM8K/MATH scoring, rejection sampling, maj@k.

    from domainspec.eval.grader.math_grader import MathGrader, is_equiv, extract_answer
    grader = MathGrader("strict")            # or "qwen-compat"
    grader.grade(model_reply, gold)          # Grade(extracted=..., correct=...)
    is_equiv("\\dfrac{1}{2}", "0.5")          # True

Two modes (write ``mode`` and ``GRADER_VERSION`` next to every reported number):
- ``strict`` (default): extraction in ``eval/grader/extract.py``, normalization that never deletes
  mathematical content (``eval/grader/normalize.py``), exact equivalence (``eval/grader/equiv.py``).
- ``qwen-compat``: Qwen2.5-Math's conventions and leniencies (``eval/grader/qwen_compat.py``).

Every check that needs sympy runs in a grader worker process under a hard time limit
(``eval/grader/pool.py``): a check that runs over ``timeout_s`` is "not equal" and costs at most
that long, from the main thread, other threads or process-pool workers alike, with the same
answers. Same-text and plain-number checks are answered in-process. Guarded results are cached
per process (an LRU keyed on the normalized pair), timeouts are not.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal, Sequence

from domainspec.eval.grader.equiv import cheap_equiv
from domainspec.eval.grader.extract import extract_final, last_boxed, number_in  # noqa: F401
from domainspec.eval.grader.normalize import normalize
from domainspec.eval.grader.qwen_compat import qwen_cheap_equal, qwen_extract, qwen_gold, qwen_majority, qwen_pred
# the gold rules belong to their benchmarks; re-exported for the grader's callers
from domainspec.eval.benchmarks.gsm8k import gsm8k_gold  # noqa: F401
from domainspec.eval.benchmarks.hendrycks_math import math_gold  # noqa: F401

GRADER_VERSION = "1.1.0"
GraderMode = Literal["strict", "qwen-compat"]
MODES = ("strict", "qwen-compat")
_NUMERIC_GOLD = re.compile(r"\s*-?[\d,]*\.?\d+\s*")
_CACHE_SIZE = 65536
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()

__all__ = ["GRADER_VERSION", "GraderMode", "Grade", "MathGrader", "extract_answer", "gsm8k_gold",
           "is_equiv", "math_gold", "normalize_answer"]


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown grader mode {mode!r}; expected one of {MODES}")


def extract_answer(text: str, mode: GraderMode = "strict", dataset: str | None = None,
                   currency: bool = False) -> str | None:
    """The final answer of a reply: last ``\\boxed{}``/``\\fbox{}``, "The answer is", ``#### N``,
    else the last number (strict: see ``eval/grader/extract.py``, where ``currency`` makes a ``$``
    before a number a currency sign; qwen-compat: the harness's extraction for ``dataset``, before
    its ``strip_string``, which ``is_equiv`` applies). None when there is none."""
    _check_mode(mode)
    if text is None:
        return None
    if mode == "qwen-compat":
        return qwen_extract(text, dataset or "math") or None
    return extract_final(text, currency=currency)


def normalize_answer(answer: str, mode: GraderMode = "strict", dataset: str | None = None) -> str:
    """An extracted answer as it is compared (qwen-compat: as the harness treats a prediction)."""
    _check_mode(mode)
    return qwen_pred(answer, dataset or "math") if mode == "qwen-compat" else normalize(answer)


def _normalized_pair(pred: str, gold: str, mode: str, dataset: str | None) -> tuple[str, str]:
    if mode == "qwen-compat":  # the harness treats the two sides differently (qwen_compat point 2)
        return qwen_pred(pred, dataset or "math"), qwen_gold(gold, dataset or "math")
    return normalize(pred), normalize(gold)


def _cached(key):
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    return None


def _store(key, value: bool):
    with _cache_lock:
        _cache[key] = value
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)


def is_equiv(pred: str | None, gold: str, mode: GraderMode = "strict", timeout_s: float = 5.0,
             dataset: str | None = None) -> bool:
    """Whether the extracted answer ``pred`` equals the gold answer (both answer strings, not
    whole replies; ``dataset``: the benchmark, for qwen-compat's per-data-set rules). Never raises
    on odd input and never takes much longer than ``timeout_s``."""
    _check_mode(mode)
    if gold is None or (pred is None and mode == "strict"):
        return False
    if pred is None:  # the harness compares the empty answer too (it equals an empty gold)
        pred = ""
    p, g = _normalized_pair(str(pred), str(gold), mode, dataset)
    cheap = cheap_equiv(p, g) if mode == "strict" else qwen_cheap_equal(p, g)
    if cheap is not None:
        return cheap
    key = (mode, p, g)
    hit = _cached(key)
    if hit is not None:
        return hit
    from domainspec.eval.grader.pool import get_pool

    answer = get_pool().check(mode, p, g, timeout_s)
    if answer is None:  # ran over the limit: "not equal", not cached (a loaded machine may be slow)
        return False
    _store(key, answer)
    return answer


@dataclass(frozen=True)
class Grade:
    extracted: str | None
    correct: bool


class MathGrader:
    """Grades whole replies against gold answers with one mode; safe to share between threads.

    ``dataset``: the benchmark's name (qwen-compat branches on it as Qwen's harness does; None
    means Qwen's ``math`` branch);
    ``currency``: ``$`` before a number is a currency sign (strict extraction, GSM8K-style data).
    :meth:`for_benchmark` reads both from a registered benchmark."""

    def __init__(self, mode: GraderMode = "strict", timeout_s: float = 5.0, dataset: str | None = None,
                 currency: bool = False):
        _check_mode(mode)
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.mode = mode
        self.timeout_s = timeout_s
        self.dataset = dataset
        self.currency = currency
        self.version = GRADER_VERSION

    @classmethod
    def for_benchmark(cls, bench, mode: GraderMode = "strict", timeout_s: float = 5.0) -> "MathGrader":
        """The grader for one benchmark's answers: its name and its ``dollar_is_currency`` flag."""
        return cls(mode, timeout_s, dataset=bench.name, currency=bool(getattr(bench, "dollar_is_currency", False)))

    def extract(self, response: str) -> str | None:
        return extract_answer(response, self.mode, self.dataset, self.currency)

    def equiv(self, pred: str | None, gold: str) -> bool:
        if self.currency and self.mode == "strict" and pred is not None and _NUMERIC_GOLD.fullmatch(str(gold)):
            pred = number_in(pred)  # "A: The jacket costs $40." against 40: the one number of the answer
        return is_equiv(pred, gold, self.mode, self.timeout_s, self.dataset)

    def grade(self, response: str, gold: str) -> Grade:
        extracted = self.extract(response)
        return Grade(extracted, self.equiv(extracted, gold))

    def grade_many(self, pairs: Sequence[tuple[str, str]], progress: bool = False) -> list[Grade]:
        """Order preserved; guarded checks of different pairs run in parallel worker processes."""
        from concurrent.futures import ThreadPoolExecutor

        from domainspec.eval.grader.pool import get_pool

        pairs = list(pairs)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(pairs), desc=f"grading ({self.mode})")

        def one(pair):
            result = self.grade(*pair)
            if bar is not None:
                bar.update(1)
            return result

        if len(pairs) < 8:
            results = [one(p) for p in pairs]
        else:
            with ThreadPoolExecutor(max_workers=get_pool().max_workers) as ex:
                results = list(ex.map(one, pairs))
        if bar is not None:
            bar.close()
        return results

    def majority_vote(self, answers: Sequence[str | None]) -> str | None:
        """maj@k answer. strict: the largest cluster of mutually equivalent answers (ties: the
        cluster seen first), returned as its first member; qwen-compat: exact string vote of the
        normalized answers, returned as the first answer with the winning string."""
        if self.mode == "qwen-compat":
            keys = [normalize_answer(a, self.mode, self.dataset) if a is not None else None for a in answers]
            winner = qwen_majority(keys)  # the raw answer of the winning key, so equiv() normalizes it once
            return None if winner is None else next(a for a, k in zip(answers, keys) if k == winner)
        clusters: list[list[str]] = []
        for a in answers:
            if a is None or not str(a).strip():
                continue
            for cluster in clusters:
                if self.equiv(a, cluster[0]):
                    cluster.append(a)
                    break
            else:
                clusters.append([a])
        if not clusters:
            return None
        best = max(len(c) for c in clusters)
        return next(c[0] for c in clusters if len(c) == best)

    def accuracy(self, correct_per_task: Sequence[Sequence[bool]]) -> float:
        """Mean accuracy over tasks. strict: the mean over all samples of each task (pass@1's
        unbiased estimate); qwen-compat: the first sample of each task only (Qwen's convention)."""
        rows = [list(r) for r in correct_per_task if len(r)]
        if not rows:
            return 0.0
        if self.mode == "qwen-compat":
            return sum(bool(r[0]) for r in rows) / len(rows)
        return sum(sum(map(bool, r)) / len(r) for r in rows) / len(rows)
