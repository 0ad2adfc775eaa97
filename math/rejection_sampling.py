"""RM-guided rejection sampling: the SFT data of each self-improvement round.

For each problem: sample N responses (temperature, top_p; CoT or TIR), grade each with the one
math grader against the reference answer (or, where a problem has none, against the majority
answer when enough samples agree), score them with the reward model, keep the top-k correct
responses by RM score after de-duplication, and write

* ``sft.jsonl``   - one row per kept response, ``{"messages": [system, user, assistant], ...}``
                    (the messages format ``domainspec.common.data.chat_data`` reads);
* ``stats.jsonl`` - one row per problem: samples, correct, unique correct, kept, gold source;
* ``summary.json``- totals (problems, samples, pass rate, kept, problems with any kept).

Source: Qwen2.5-Math technical report (Yang et al. 2024), sec. 3.1: sample responses from the
current model, keep the correct ones ranked by the RM. Without an RM the first correct unique
responses are kept (plain rejection sampling). This module does not train anything.

Usage::

    rows = sample_responses(backend, problems, cfg)              # or rows from an earlier step
    summary = rejection_sample(rows, cfg, out_dir, grader=MathGrader(), rm=(model, tok))
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from domainspec.common.artifacts import iter_jsonl, row_id
from domainspec.common.config import Config
from domainspec.common.models.sampling import sampling_section
from domainspec.eval.grader.math_grader import GraderMode

log = logging.getLogger(__name__)


RS_SAMPLING = sampling_section("The N responses sampled per problem (temperature 0 makes n > 1 repeat itself).",
                               n=8, temperature=0.8, top_p=0.95, max_new_tokens=256, batch_size=16)


class RejectionSamplingConfig(Config):
    sampling: RS_SAMPLING
    mode: Literal["cot", "tir"] = Field("cot", description="Inference mode of the sampled responses.")
    top_k: int = Field(4, ge=1, description="Correct responses kept per problem, best RM score first.")
    dedup: bool = Field(True, description="Drop responses identical to a kept one after collapsing whitespace.")
    majority_min_share: float = Field(0.5, ge=0.0, le=1.0, description="Problems without a reference: the majority "
                                                                       "answer counts as gold only when at least this "
                                                                       "share of samples gives it.")
    grader_mode: GraderMode = Field("strict", description="Answer grading mode (eval.grader.math_grader).")

    def for_round(self, k: int) -> "RejectionSamplingConfig":
        """Round ``k``'s settings: the sampling seed moved by ``k``, so rounds draw different samples."""
        return self.model_copy(update={"sampling": self.sampling.replace(seed=self.sampling.seed + k)})


# ---------------------------------------------------------------- problems


def normalize_problem(row: dict, index: int, where: str = "problems") -> dict:
    """``{"id", "question", "answer" | None}`` from a synthetic, GSM8K or MATH row (id: artifacts.row_id)."""
    q = row.get("question", row.get("problem"))
    if not isinstance(q, str) or not q.strip():
        raise ValueError(f"{where}: row {index}: no 'question' (or 'problem') text")
    pid = row_id(row, index)
    answer = row.get("answer")
    if isinstance(answer, str) and "####" in answer:  # a GSM8K row: the benchmark's gold rule
        from domainspec.eval.benchmarks.gsm8k import gsm8k_gold
        answer = gsm8k_gold(answer)
    elif answer is None and row.get("solution"):  # a MATH row without an answer field
        from domainspec.eval.benchmarks.hendrycks_math import math_gold
        answer = math_gold(row)
    return {"id": pid, "question": q, "answer": None if answer is None else str(answer)}


def read_problems(path: str | Path, limit: int | None = None) -> list[dict]:
    rows = []
    for where, raw in iter_jsonl(path):  # streamed: a limit reads only the first rows
        rows.append(normalize_problem(raw, len(rows), where=where))
        if limit is not None and len(rows) >= limit:
            break
    return rows


# ---------------------------------------------------------------- steps


def sample_responses(backend: Any, problems: Sequence[dict], cfg: RejectionSamplingConfig,
                     sandbox: Any = None, tir_config: Any = None, progress: bool = False,
                     out: str | Path | None = None) -> list[dict]:
    """``{"id", "question", "answer", "responses": [n texts]}`` per problem, through the one generate path
    (``eval.generate.generate_samples``). ``out``: the samples JSONL to keep them in, resumable and, under a
    launcher, sampled data-parallel (every rank then returns all rows); without it a temporary file, one process."""
    import tempfile

    from domainspec.common.artifacts import content_hash
    from domainspec.eval.benchmarks.base import Task
    from domainspec.eval.generate import Shard, generate_samples
    from domainspec.math.tir import completer
    # a problem's position is its task id (ids in a problems file need not be unique); the hash of the
    # questions keeps a resumed file from mixing in the responses of another problem list
    tasks = [Task(str(i), p["question"]) for i, p in enumerate(problems)]
    meta = {"mode": cfg.mode, "problems": content_hash([p["question"] for p in problems])}
    complete = completer(backend, cfg.mode, sandbox, tir_config, progress)
    with tempfile.TemporaryDirectory() as tmp:
        rows = generate_samples(tasks, complete, cfg.sampling, out or Path(tmp) / "responses.jsonl", meta,
                                shard=None if out else Shard())
    responses: list[list[str]] = [[] for _ in problems]
    for row in rows:  # task order, then sample order
        responses[int(row["task_id"])].append(row["completion"])
    return [{**p, "responses": r} for p, r in zip(problems, responses)]


def grade_rows(rows: Sequence[dict], grader: Any, majority_min_share: float = 0.5) -> list[dict]:
    """Adds ``extracted``, ``correct`` (lists), ``gold`` and ``gold_source`` to each row.

    With a reference answer every response is graded against it; without one the majority
    answer (grader.majority_vote) is the gold when its share reaches ``majority_min_share``,
    else nothing is correct (``gold_source="none"``).
    """
    from domainspec.eval.grader.math_grader import extract_answer
    out = []
    for row in rows:
        responses = row["responses"]
        gold, source = row.get("answer"), "reference"
        extracted = [extract_answer(r, grader.mode) for r in responses]
        if gold is None:
            maj = grader.majority_vote(extracted)
            share = 0.0
            if maj is not None:
                share = sum(1 for g in grader.grade_many([(r, maj) for r in responses]) if g.correct) / len(responses)
            gold, source = (maj, "majority") if maj is not None and share >= majority_min_share else (None, "none")
        if gold is None:
            correct = [False] * len(responses)
        else:
            correct = [g.correct for g in grader.grade_many([(r, gold) for r in responses])]
        out.append({**row, "extracted": extracted, "correct": correct, "gold": gold, "gold_source": source})
    return out


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def select(row: dict, scores: Sequence[float] | None, top_k: int, dedup: bool = True) -> tuple[list[dict], dict]:
    """Top-k correct responses of one graded row by RM score (ties and no RM: sample order).

    Returns (kept ``[{"response", "rm_score"}]``, stats).
    """
    responses, correct = row["responses"], row["correct"]
    if scores is not None and len(scores) != len(responses):
        raise ValueError(f"problem {row.get('id')}: {len(scores)} RM scores for {len(responses)} responses")
    idx = [i for i, ok in enumerate(correct) if ok]
    unique, seen = [], set()
    for i in idx:
        key = _norm(responses[i])
        if dedup and key in seen:
            continue
        seen.add(key)
        unique.append(i)
    ranked = sorted(unique, key=lambda i: -scores[i]) if scores is not None else unique  # stable: ties keep order
    kept = [{"response": responses[i], "rm_score": None if scores is None else float(scores[i])}
            for i in ranked[:top_k]]
    stats = {"id": row.get("id"), "num_samples": len(responses), "num_correct": len(idx),
             "num_unique_correct": len(unique), "num_kept": len(kept), "gold": row.get("gold"),
             "gold_source": row.get("gold_source")}
    if scores is not None and responses:
        stats["rm_mean"] = sum(scores) / len(scores)
        stats["rm_mean_kept"] = (sum(k["rm_score"] for k in kept) / len(kept)) if kept else None
    return kept, stats


def sft_row(question: str, response: str, mode: str, **extra: Any) -> dict:
    from domainspec.math.tir import build_messages
    return {"messages": build_messages(question, mode) + [{"role": "assistant", "content": response}], **extra}


def rejection_sample(graded: Sequence[dict], cfg: RejectionSamplingConfig, out_dir: str | Path,
                     rm: tuple[Any, Any] | None = None, rm_max_length: int = 512, rm_batch_size: int = 16) -> dict:
    """Select and write the SFT set from graded rows (see :func:`grade_rows`); returns the summary.

    Under a launcher every rank calls this with the same rows: RM scoring is split across the ranks,
    rank 0 alone writes the files (every rank returns the summary)."""
    from domainspec.common.pipeline import ranks
    out = Path(out_dir)
    write = ranks.is_rank0()
    if write:
        out.mkdir(parents=True, exist_ok=True)
    all_scores: list[list[float] | None] = [None] * len(graded)
    if rm is not None:
        from domainspec.math.reward_model import score
        model, tok = rm
        # score only problems with a correct response: the others keep nothing whatever the RM says
        todo = [i for i, r in enumerate(graded) if any(r["correct"])]
        qs = [graded[i]["question"] for i in todo for _ in graded[i]["responses"]]
        rs = [x for i in todo for x in graded[i]["responses"]]
        flat = score(model, tok, qs, rs, rm_max_length, rm_batch_size, split=True)
        pos = 0
        for i in todo:
            k = len(graded[i]["responses"])
            all_scores[i] = flat[pos:pos + k]
            pos += k
    n_kept = n_samples = n_correct = solved = 0
    sft_lines, stats_lines = [], []
    for row, scores in zip(graded, all_scores):
        kept, stats = select(row, scores, cfg.top_k, cfg.dedup)
        for k in kept:
            sft_lines.append(json.dumps(sft_row(row["question"], k["response"], cfg.mode, id=row.get("id"),
                                                rm_score=k["rm_score"])) + "\n")
        stats_lines.append(json.dumps(stats) + "\n")
        n_kept += len(kept)
        n_samples += stats["num_samples"]
        n_correct += stats["num_correct"]
        solved += bool(kept)
    summary = {"num_problems": len(graded), "num_samples": n_samples, "num_correct": n_correct,
               "sample_accuracy": n_correct / n_samples if n_samples else 0.0, "num_kept": n_kept,
               "problems_with_kept": solved, "used_rm": rm is not None, "top_k": cfg.top_k}
    if write:
        (out / "sft.jsonl").write_text("".join(sft_lines))
        (out / "stats.jsonl").write_text("".join(stats_lines))
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("rejection sampling: %d/%d samples correct, kept %d responses for %d/%d problems",
             n_correct, n_samples, n_kept, solved, len(graded))
    return summary

