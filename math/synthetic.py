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
from pathlib import Path
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


class RoundSynthesisConfig(SyntheticConfig):
    """Prompted synthesis inside the math loop (``MathLoopConfig.synthesis``): each round an instruct model
    writes ``n`` new problems from the seed problems, its majority vote fixes their answers, and they join
    that round's problems (Qwen2.5-Math sec. 3.1)."""

    source: Literal["prompted"] = Field("prompted", description="Only 'prompted' here: templated round "
                                                                "problems are problems.round_source.")
    writer: str = Field("policy", description="The model that writes and solves the new problems: 'policy' (the "
                                              "round's current policy) or a model folder (an instruct model, "
                                              "e.g. Qwen2.5-72B-Instruct in the report).")


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
                      exclude: Iterable[str] = (), out_dir: str | Path | None = None,
                      id_prefix: str | None = None, progress: bool = False) -> tuple[list[dict], dict]:
    """New problems written by an instruct model, answers fixed by majority vote of its solutions.

    Both sampling steps (the problems, one per request; then ``votes`` CoT solutions of each new
    question) go through the one generate path (``eval.generate.generate_samples``). With ``out_dir``
    they are kept in ``out_dir/requests.jsonl`` and ``votes.jsonl``: resumable, and data-parallel under a
    launcher (every rank calls this and gets the same result); without it, one process and temporary files.

    Returns (problems, stats). Each problem: ``{"id", "question", "answer", "agreement", "votes"}``.
    ``stats``: requested, parsed_new, kept, and ``dropped``: counts per reason; the dropped requests and
    questions themselves, each with its reason, are ``stats["dropped_rows"]`` (a caller writes them).
    Reasons: ``not_a_problem`` (no problem text of 15-1000 characters in the reply), ``known_question``
    (a seed or excluded question), ``repeat`` (written twice), ``no_majority`` (no answer is extracted, or
    the vote is split evenly), ``low_agreement`` (the majority's share is under ``min_agreement``).
    """
    import contextlib
    import random
    import tempfile

    from domainspec.common.artifacts import content_hash
    from domainspec.eval.benchmarks.base import Task
    from domainspec.eval.generate import Shard, generate_samples, prompted_completer
    from domainspec.eval.grader.math_grader import extract_answer
    from domainspec.math.tir import completer
    if not seeds:
        raise ValueError("prompted synthesis needs seed problems")
    prefix = id_prefix or f"gen-{cfg.seed}"
    rng = random.Random(cfg.sampling.seed)
    requests = []
    for i in range(cfg.n):
        shots = rng.sample(list(seeds), min(cfg.few_shot, len(seeds)))
        examples = "\n\n".join(f"Problem: {s['question']}" for s in shots)
        requests.append(Task(str(i), PROBLEM_REQUEST.format(examples=examples)))
    known = set(exclude) | {s["question"] for s in seeds}
    dropped: list[dict] = []
    with tempfile.TemporaryDirectory() if out_dir is None else contextlib.nullcontext(out_dir) as folder:
        where = Path(folder)
        shard = None if out_dir is not None else Shard()  # temporary files: one process
        write = prompted_completer(backend, None, "chat", render=lambda t: [{"role": "user", "content": t.prompt}],
                                   progress=progress)
        written = generate_samples(requests, write, cfg.sampling.replace(n=1), where / "requests.jsonl",
                                   {"step": "write", "requests": content_hash([t.prompt for t in requests])},
                                   shard=shard)
        questions: list[str] = []
        seen: set[str] = set()
        for row in written:
            q = _parse_problem(row["completion"])
            reason = ("not_a_problem" if q is None else "known_question" if q in known
                      else "repeat" if q in seen else None)
            if reason:
                dropped.append({"request": int(row["task_id"]), "text": row["completion"], "reason": reason})
                continue
            seen.add(q)
            questions.append(q)
        tasks = [Task(str(i), q) for i, q in enumerate(questions)]
        vote_params = cfg.sampling.replace(n=cfg.votes, seed=cfg.sampling.seed + 1)
        voted = generate_samples(tasks, completer(backend, "cot", progress=progress), vote_params,
                                 where / "votes.jsonl", {"step": "vote", "questions": content_hash(questions)},
                                 shard=shard) if tasks else []
    solutions: list[list[str]] = [[] for _ in questions]
    for row in voted:
        solutions[int(row["task_id"])].append(row["completion"])
    rows = []
    for i, (q, sols) in enumerate(zip(questions, solutions)):
        answers = [extract_answer(s, grader.mode) for s in sols]
        maj = grader.majority_vote(answers)
        if maj is None:
            dropped.append({"question": q, "answers": answers, "reason": "no_majority"})
            continue
        agree = sum(g.correct for g in grader.grade_many([(s, maj) for s in sols])) / len(sols)
        if agree < cfg.min_agreement:
            dropped.append({"question": q, "answer": maj, "agreement": agree, "answers": answers,
                            "reason": "low_agreement"})
            continue
        rows.append({"id": f"{prefix}-{i}", "question": q, "answer": maj, "agreement": agree, "votes": len(sols)})
    stats = {"requested": cfg.n, "parsed_new": len(questions), "kept": len(rows),
             "dropped": dict(sorted(Counter(d["reason"] for d in dropped).items())), "dropped_rows": dropped}
    log.info("prompted synthesis: %d requested, %d new questions parsed, %d kept by majority vote; dropped %s",
             cfg.n, len(questions), len(rows), stats["dropped"] or "none")
    return rows, stats


def math_text_documents(n: int = 2000, seed: int = 0, difficulty: int | Sequence[int] = (1, 2, 3),
                        kinds: Sequence[str] | None = None) -> Iterator[str]:
    """Worked problems as CPT text (``Question: ...\\nSolution: ...``), sympy-checked answers."""
    from domainspec.common.data.builtin.math_problems import math_corpus_documents
    return math_corpus_documents(n, seed, difficulty, kinds)
