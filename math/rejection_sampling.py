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

from domainspec.common.config import Config

log = logging.getLogger(__name__)


class RejectionSamplingConfig(Config):
    n: int = Field(8, ge=1, description="Responses sampled per problem.")
    temperature: float = Field(0.8, ge=0.0, description="Sampling temperature (0 = greedy; then n > 1 repeats itself).")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens generated per response (per generation call in TIR).")
    mode: Literal["cot", "tir"] = Field("cot", description="Inference mode of the sampled responses.")
    top_k: int = Field(4, ge=1, description="Correct responses kept per problem, best RM score first.")
    dedup: bool = Field(True, description="Drop responses identical to a kept one after collapsing whitespace.")
    majority_min_share: float = Field(0.5, ge=0.0, le=1.0, description="Problems without a reference: the majority "
                                                                       "answer counts as gold only when at least this "
                                                                       "share of samples gives it.")
    grader_mode: Literal["strict", "qwen-compat"] = Field("strict", description="Answer grading mode (eval.grader.math_grader).")
    batch_size: int = Field(16, ge=1, description="Prompts per generation batch.")
    seed: int = Field(0, description="Sampling seed.")


# ---------------------------------------------------------------- problems


def normalize_problem(row: dict, index: int, where: str = "problems") -> dict:
    """``{"id", "question", "answer" | None}`` from a synthetic, GSM8K or MATH row."""
    q = row.get("question", row.get("problem"))
    if not isinstance(q, str) or not q.strip():
        raise ValueError(f"{where}: row {index}: no 'question' (or 'problem') text")
    pid = str(row.get("id", row.get("task_id", row.get("unique_id", row.get("idx", index)))))
    answer = row.get("answer")
    if isinstance(answer, str) and "####" in answer:
        from domainspec.eval.grader.math_grader import gsm8k_gold
        answer = gsm8k_gold(answer)
    elif answer is None and row.get("solution"):
        from domainspec.eval.grader.math_grader import math_gold
        answer = math_gold(row)
    return {"id": pid, "question": q, "answer": None if answer is None else str(answer)}


def read_problems(path: str | Path, limit: int | None = None) -> list[dict]:
    from domainspec.eval.datafiles import read_jsonl  # the one JSONL reader with path:line errors

    rows = []
    for where, raw in read_jsonl(path):
        rows.append(normalize_problem(raw, len(rows), where=where))
        if limit is not None and len(rows) >= limit:
            break
    return rows


# ---------------------------------------------------------------- steps


def sample_responses(backend: Any, problems: Sequence[dict], cfg: RejectionSamplingConfig,
                     sandbox: Any = None, tir_config: Any = None, progress: bool = False) -> list[dict]:
    """``{"id", "question", "answer", "responses": [n texts]}`` per problem."""
    from domainspec.common.models.generation import GenerationParams
    from domainspec.math.tir import infer
    params = GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                              n=cfg.n, seed=cfg.seed, batch_size=cfg.batch_size)
    outs = infer(backend, [p["question"] for p in problems], cfg.mode, params, sandbox=sandbox,
                 config=tir_config, progress=progress)
    return [{**p, "responses": list(o)} for p, o in zip(problems, outs)]


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
    """Select and write the SFT set from graded rows (see :func:`grade_rows`); returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    all_scores: list[list[float] | None] = [None] * len(graded)
    if rm is not None:
        from domainspec.math.reward_model import score
        model, tok = rm
        # score only problems with a correct response: the others keep nothing whatever the RM says
        todo = [i for i, r in enumerate(graded) if any(r["correct"])]
        qs = [graded[i]["question"] for i in todo for _ in graded[i]["responses"]]
        rs = [x for i in todo for x in graded[i]["responses"]]
        flat = score(model, tok, qs, rs, rm_max_length, rm_batch_size)
        pos = 0
        for i in todo:
            k = len(graded[i]["responses"])
            all_scores[i] = flat[pos:pos + k]
            pos += k
    n_kept = n_samples = n_correct = solved = 0
    with open(out / "sft.jsonl", "w") as f_sft, open(out / "stats.jsonl", "w") as f_stats:
        for row, scores in zip(graded, all_scores):
            kept, stats = select(row, scores, cfg.top_k, cfg.dedup)
            for k in kept:
                f_sft.write(json.dumps(sft_row(row["question"], k["response"], cfg.mode, id=row.get("id"),
                                               rm_score=k["rm_score"])) + "\n")
            f_stats.write(json.dumps(stats) + "\n")
            n_kept += len(kept)
            n_samples += stats["num_samples"]
            n_correct += stats["num_correct"]
            solved += bool(kept)
    summary = {"num_problems": len(graded), "num_samples": n_samples, "num_correct": n_correct,
               "sample_accuracy": n_correct / n_samples if n_samples else 0.0, "num_kept": n_kept,
               "problems_with_kept": solved, "used_rm": rm is not None, "top_k": cfg.top_k}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("rejection sampling: %d/%d samples correct, kept %d responses for %d/%d problems",
             n_correct, n_samples, n_kept, solved, len(graded))
    return summary


def write_jsonl(rows: Sequence[dict], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return p


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
