"""Math evaluation of a policy: greedy accuracy (pass@1), maj@k and rm@k, in CoT and/or TIR mode.

* pass@1: one greedy response per problem, graded by the one grader (``MathGrader``);
* maj@k:  the grader's majority answer of k sampled responses is correct (``passk.majority_correct``);
* rm@k:   the reward model's best of the same k samples is correct (``passk.reward_best_correct``);
* sample accuracy: the mean correctness of the k samples (pass@1 estimated from samples).

Problems are ``{"id", "question", "answer"}`` rows: the embedded default's held-out synthetic
set, or GSM8K / MATH loaded through ``domainspec.eval``'s benchmark registry (its loaders and gold
answers), when their data is given. Every response is written to ``samples_<set>_<mode>.jsonl``
in the ``domainspec eval score`` format (``task_id``, ``completion``) with the grade added, so the
numbers can be re-scored independently. This module trains nothing.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from domainspec.common.config import Config

log = logging.getLogger(__name__)


class BenchmarkData(Config):
    name: Literal["gsm8k", "math"] = Field(..., description="Registered math benchmark.")
    path: str = Field(..., description="Local data file (or hub name) the benchmark's loader reads.")
    limit: int | None = Field(None, ge=1, description="First N problems only.")


class MathEvalConfig(Config):
    modes: list[Literal["cot", "tir"]] = Field(["cot"], description="Inference modes evaluated.")
    k: int = Field(4, ge=1, description="Samples per problem for maj@k and rm@k (0 sampled calls when k=1).")
    temperature: float = Field(0.7, ge=0.0, description="Temperature of the k samples.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus mass of the k samples.")
    max_new_tokens: int = Field(256, ge=1, description="Tokens per response (per generation call in TIR).")
    batch_size: int = Field(16, ge=1, description="Prompts per generation batch.")
    grader_mode: Literal["strict", "qwen-compat"] = Field("strict", description="Answer grading mode.")
    benchmarks: list[BenchmarkData] = Field([], description="GSM8K / MATH data evaluated besides the held-out set.")
    seed: int = Field(1234, description="Sampling seed.")


def benchmark_problems(spec: BenchmarkData) -> list[dict]:
    """Problems of a registered benchmark through domainspec.eval's loader and gold answers."""
    from domainspec.eval.benchmarks.registry import get_benchmark
    bench = get_benchmark(spec.name)
    tasks = bench.load(spec.path, limit=spec.limit)
    return [{"id": t.task_id, "question": t.prompt, "answer": bench.gold(t)} for t in tasks]


def _params(cfg: MathEvalConfig, greedy: bool):
    from domainspec.common.models.generation import GenerationParams
    if greedy:
        return GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=0.0, n=1, seed=cfg.seed,
                                batch_size=cfg.batch_size)
    return GenerationParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                            n=cfg.k, seed=cfg.seed, batch_size=cfg.batch_size)


def aggregate(problems: Sequence[dict], greedy: Sequence[bool], samples: Sequence[Sequence[bool]],
              answers: Sequence[Sequence[str | None]], rm_scores: Sequence[Sequence[float]] | None,
              vote: Any, k: int) -> dict:
    """pass@1 / maj@k / rm@k / sample accuracy from per-problem grades (pure; no I/O)."""
    from domainspec.eval.passk import accuracy, majority_correct, reward_best_correct
    n = len(problems)
    out = {"num_problems": n, "pass@1": accuracy(greedy), "k": k}
    if k > 1 and n:
        out[f"maj@{k}"] = accuracy([majority_correct(a, c, k, vote) for a, c in zip(answers, samples)])
        out["sample_accuracy"] = accuracy([x for c in samples for x in c])
        out["num_samples"] = sum(len(c) for c in samples)
        if rm_scores is not None:
            out[f"rm@{k}"] = accuracy([reward_best_correct(s, c, k) for s, c in zip(rm_scores, samples)])
    return out


def evaluate(backend: Any, problems: Sequence[dict], cfg: MathEvalConfig, out_dir: str | Path, name: str = "heldout",
             rm: tuple[Any, Any] | None = None, sandbox: Any = None, tir_config: Any = None,
             rm_max_length: int = 512) -> dict:
    """Metrics per mode for one problem set; writes samples and ``metrics_<name>.json`` under out_dir."""
    from domainspec.eval.grader.math_grader import MathGrader, extract_answer
    from domainspec.math.tir import infer
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grader = MathGrader(cfg.grader_mode)
    questions = [p["question"] for p in problems]
    golds = [p["answer"] for p in problems]
    results = {}
    for mode in cfg.modes:
        if mode == "tir" and sandbox is None:
            raise ValueError("TIR evaluation needs a sandbox")
        greedy_resp = [r[0] for r in infer(backend, questions, mode, _params(cfg, True), sandbox, tir_config)]
        greedy_ok = [g.correct for g in grader.grade_many(list(zip(greedy_resp, golds)))]
        sampled: list[list[str]] = [[] for _ in problems]
        if cfg.k > 1:
            sampled = infer(backend, questions, mode, _params(cfg, False), sandbox, tir_config)
        flat = [(r, gold) for rs, gold in zip(sampled, golds) for r in rs]
        flat_grades = grader.grade_many(flat)
        ok, answers, pos = [], [], 0
        for rs in sampled:
            ok.append([g.correct for g in flat_grades[pos:pos + len(rs)]])
            answers.append([g.extracted for g in flat_grades[pos:pos + len(rs)]])
            pos += len(rs)
        scores = None
        if rm is not None and cfg.k > 1:
            from domainspec.math.reward_model import score
            flat_scores = score(rm[0], rm[1], [q for q, rs in zip(questions, sampled) for _ in rs],
                                [r for rs in sampled for r in rs], rm_max_length)
            scores, pos = [], 0
            for rs in sampled:
                scores.append(flat_scores[pos:pos + len(rs)])
                pos += len(rs)
        metrics = aggregate(problems, greedy_ok, ok, answers, scores, grader.majority_vote, cfg.k)
        metrics.update({"mode": mode, "set": name, "grader_mode": cfg.grader_mode, "grader_version": grader.version})
        results[mode] = metrics
        with open(out / f"samples_{name}_{mode}.jsonl", "w") as f:
            for i, p in enumerate(problems):
                f.write(json.dumps({"task_id": p["id"], "kind": "greedy", "completion": greedy_resp[i],
                                    "extracted": extract_answer(greedy_resp[i], cfg.grader_mode),
                                    "passed": greedy_ok[i]}) + "\n")
                for j, r in enumerate(sampled[i]):
                    f.write(json.dumps({"task_id": p["id"], "kind": "sample", "completion": r,
                                        "extracted": answers[i][j], "passed": ok[i][j],
                                        "rm_score": None if scores is None else scores[i][j]}) + "\n")
        log.info("eval %s/%s: %s", name, mode, {k: v for k, v in metrics.items() if isinstance(v, float)})
    (out / f"metrics_{name}.json").write_text(json.dumps(results, indent=2))
    return results
