"""Synthetic math data: new problems from seed problems, and math text for continued pretraining.

Two sources of new problems (Qwen2.5-Math technical report, sec. 2-3: an instruct model
synthesizes problems; answers come from the model's own majority vote when no reference exists):

* ``templated`` (the embedded default, works offline on any machine): the kinds and difficulty
  levels of the seed problems pick templates of ``domainspec.common.data.builtin.math_problems``; every
  answer is checked with sympy there. Questions already present (seeds, held-out sets) are skipped.
* ``prompted`` (for instruct models): a few seed problems are shown and the model writes a new
  one; the model then solves it ``votes`` times (CoT) and the majority answer, through the one
  grader's ``majority_vote``, becomes the reference when at least ``min_agreement`` of the votes
  give it. Unverified problems are dropped.

``math_text_documents`` yields worked problems as plain text for CPT corpora.
This module does not grade responses for training (``rejection_sampling`` does).
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from typing import Any, Iterable, Iterator, Literal, Sequence

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.models.sampling import sampling_section

log = logging.getLogger(__name__)


PROMPTED_SAMPLING = sampling_section(
    "Prompted: how problems (one each) and their votes (`votes` each, seed + 1) are sampled.",
    temperature=0.8, max_new_tokens=256, seed=1)


class SyntheticConfig(Config):
    source: Literal["templated", "prompted"] = Field("templated", description="How new problems are made.")
    n: int = Field(200, ge=0, description="New problems wanted.")
    seed: int = Field(1, description="Generation seed of templated problems (prompted: sampling.seed).")
    kinds: list[str] | None = Field(None, description="Templated problem kinds (None = those of the seeds, else all).")
    difficulty: int | None = Field(None, ge=1, description="Templated difficulty (None = the seeds' levels).")
    few_shot: int = Field(3, ge=1, description="Prompted: seed problems shown per request.")
    votes: int = Field(8, ge=1, description="Prompted: solutions sampled to fix each new problem's answer.")
    min_agreement: float = Field(0.5, ge=0.0, le=1.0, description="Prompted: share of votes the majority answer needs.")
    sampling: PROMPTED_SAMPLING


def problem_row(p: Any, pid: str) -> dict:
    return {"id": pid, "question": p.question, "answer": p.answer, "solution": p.solution, "kind": p.kind,
            "difficulty": p.difficulty}


def templated_problems(n: int, seed: int, kinds: Sequence[str] | None = None, difficulty: int = 1,
                       exclude: Iterable[str] = (), prefix: str = "syn") -> list[dict]:
    """``n`` distinct templated problems whose questions are not in ``exclude``.

    Draws problems ``0, 1, 2, ...`` of ``seed`` (each independent of how many are drawn) and
    skips repeats, so the result is deterministic for the arguments.
    """
    from domainspec.common.data.builtin.math_problems import make_problem, verify_problem
    seen = set(exclude)
    rows: list[dict] = []
    i = 0
    budget = 10 * n + 100  # small templates (difficulty 1) hold only so many distinct questions
    while len(rows) < n and i < budget:
        p = make_problem(seed, i, kinds, difficulty, verify=False)  # sympy only for the ones kept
        i += 1
        if p.question in seen:
            continue
        if not verify_problem(p):
            raise AssertionError(f"templated problem fails its sympy check: {p}")
        seen.add(p.question)
        rows.append(problem_row(p, f"{prefix}-{seed}-{i - 1}"))
    if len(rows) < n:
        raise ValueError(f"only {len(rows)} distinct templated problems (kinds={kinds}, difficulty={difficulty}) "
                         f"outside the excluded set; asked for {n}. Use more kinds or a higher difficulty.")
    return rows


def problems_from_seeds(seeds: Sequence[dict], cfg: SyntheticConfig, exclude: Iterable[str] = ()) -> list[dict]:
    """Templated problems shaped like the seeds (their kinds and difficulty levels)."""
    kinds = cfg.kinds or sorted({s["kind"] for s in seeds if s.get("kind")}) or None
    levels = Counter(int(s.get("difficulty", 1)) for s in seeds) if seeds else Counter({1: 1})
    difficulty = cfg.difficulty or levels.most_common(1)[0][0]
    excluded = set(exclude) | {s["question"] for s in seeds}
    return templated_problems(cfg.n, cfg.seed, kinds, difficulty, excluded)


PROBLEM_REQUEST = ("Here are some math word problems.\n\n{examples}\n\n"
                   "Write one new problem of the same style and difficulty with a single numeric answer. "
                   "Reply with the problem only, starting with \"Problem:\".")


def _parse_problem(text: str) -> str | None:
    m = re.search(r"Problem:\s*(.+)", text, flags=re.S)
    body = (m.group(1) if m else text).strip()
    body = body.split("\n\n")[0].strip()
    return body if 15 <= len(body) <= 1000 else None


def prompted_problems(backend: Any, seeds: Sequence[dict], cfg: SyntheticConfig, grader: Any,
                      exclude: Iterable[str] = ()) -> tuple[list[dict], dict]:
    """New problems written by an instruct model, answers fixed by majority vote of its solutions.

    Returns (problems, stats). Each problem: ``{"id", "question", "answer", "agreement"}``.
    """
    import random
    from domainspec.eval.grader.math_grader import extract_answer
    from domainspec.math.tir import build_prompt
    if not seeds:
        raise ValueError("prompted synthesis needs seed problems")
    rng = random.Random(cfg.sampling.seed)
    requests = []
    for _ in range(cfg.n):
        shots = rng.sample(list(seeds), min(cfg.few_shot, len(seeds)))
        examples = "\n\n".join(f"Problem: {s['question']}" for s in shots)
        requests.append(backend.apply_chat_template([{"role": "user", "content": PROBLEM_REQUEST.format(examples=examples)}]))
    params = cfg.sampling.replace(n=1)
    seen = set(exclude) | {s["question"] for s in seeds}
    questions = []
    for out in backend.generate(requests, params):
        q = _parse_problem(out[0]) if out else None
        if q and q not in seen:
            seen.add(q)
            questions.append(q)
    vote_params = cfg.sampling.replace(n=cfg.votes, seed=cfg.sampling.seed + 1)
    solutions = backend.generate([build_prompt(backend, q, "cot") for q in questions], vote_params) if questions else []
    rows = []
    for i, (q, sols) in enumerate(zip(questions, solutions)):
        answers = [extract_answer(s, grader.mode) for s in sols]
        maj = grader.majority_vote(answers)
        if maj is None:
            continue
        agree = sum(g.correct for g in grader.grade_many([(s, maj) for s in sols])) / len(sols)
        if agree >= cfg.min_agreement:
            rows.append({"id": f"gen-{cfg.seed}-{i}", "question": q, "answer": maj, "agreement": agree})
    stats = {"requested": cfg.n, "parsed_new": len(questions), "kept": len(rows)}
    log.info("prompted synthesis: %d requested, %d new questions parsed, %d kept by majority vote",
             cfg.n, len(questions), len(rows))
    return rows, stats


def math_text_documents(n: int = 2000, seed: int = 0, difficulty: int | Sequence[int] = (1, 2, 3),
                        kinds: Sequence[str] | None = None) -> Iterator[str]:
    """Worked problems as CPT text (``Question: ...\\nSolution: ...``), sympy-checked answers."""
    from domainspec.common.data.builtin.math_problems import math_corpus_documents
    return math_corpus_documents(n, seed, difficulty, kinds)
