"""Math evaluation of a policy: greedy accuracy (pass@1), maj@k and rm@k, in CoT and/or TIR mode.

* pass@1: one greedy response per problem, graded by the one grader (``MathGrader``);
* maj@k:  the grader's majority answer of k sampled responses is correct (``passk.majority_correct``);
* rm@k:   the reward model's best of the same k samples is correct (``passk.reward_best_correct``);
* sample accuracy: the mean correctness of the k samples (pass@1 estimated from samples).

Both the greedy and the sampled responses go through the one generate -> score path
(``domainspec.eval.evaluate.evaluate_tasks``) with CoT/TIR inference as the completer, so the
metrics come from the same aggregation as ``domainspec eval score`` (maj@k clusters answers with
the grader's equivalence in every mode).

Problems are ``{"id", "question", "answer"}`` rows: the embedded default's held-out synthetic
set, or GSM8K / MATH loaded through ``domainspec.eval``'s benchmark registry (its loaders and gold
answers), when their data is given. The samples files are in the ``domainspec eval score`` format,
so the numbers can be re-scored independently. This module trains nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from domainspec.common.artifacts import write_json
from domainspec.common.config import Config
from domainspec.common.models.sampling import sampling_section
from domainspec.eval.benchmarks.registry import MathBenchmarkName
from domainspec.eval.grader.math_grader import GraderMode

log = logging.getLogger(__name__)


class BenchmarkData(Config):
    name: MathBenchmarkName = Field(..., description="Registered math benchmark.")
    path: str = Field(..., description="Local data file (or hub name) the benchmark's loader reads.")
    limit: int | None = Field(None, ge=1, description="First N problems only.")
    split: str | None = Field(None, description="Split of a hub dataset (default: the benchmark's, test).")


EVAL_SAMPLING = sampling_section(
    "The k = sampling.n samples per problem behind maj@k and rm@k (k = 1: none are drawn); pass@1 is one "
    "greedy response with the same settings.", n=4, temperature=0.7, top_p=0.95, max_new_tokens=256, batch_size=16,
    seed=1234)


class MathEvalConfig(Config):
    modes: list[Literal["cot", "tir"]] = Field(["cot"], description="Inference modes evaluated.")
    sampling: EVAL_SAMPLING
    grader_mode: GraderMode = Field("strict", description="Answer grading mode.")
    benchmarks: list[BenchmarkData] = Field([], description="GSM8K / MATH data evaluated besides the held-out set.")


def benchmark_problems(spec: BenchmarkData) -> list[dict]:
    """Problems of a registered benchmark through domainspec.eval's loader and gold answers."""
    from domainspec.eval.benchmarks.registry import get_benchmark
    bench = get_benchmark(spec.name)
    tasks = bench.load(spec.path, limit=spec.limit, split=spec.split)
    return [{"id": t.task_id, "question": t.prompt, "answer": bench.gold(t)} for t in tasks]


def _rm_reward(rm: tuple[Any, Any], max_length: int):
    """The reward model's score of each (question, response) sample row."""
    def reward(tasks, rows):
        from domainspec.math.reward_model import score
        return score(rm[0], rm[1], [t.prompt for t in tasks], [r["completion"] for r in rows], max_length)
    return reward


def evaluate(backend: Any, problems: Sequence[dict], cfg: MathEvalConfig, out_dir: str | Path, name: str = "heldout",
             rm: tuple[Any, Any] | None = None, sandbox: Any = None, tir_config: Any = None,
             rm_max_length: int = 512) -> dict:
    """Metrics per mode for one problem set, through the one generate -> score path.

    Per mode, ``<out_dir>/<name>_<mode>/greedy/`` and ``.../sampled/`` each hold samples.jsonl,
    results.jsonl, summary.json and report.md; ``metrics_<name>.json`` holds the metrics of every mode.
    Under a launcher every rank calls this and samples its share; rank 0 scores and returns the metrics,
    the other ranks return {}.
    """
    from domainspec.eval.benchmarks.problems import ProblemSet
    from domainspec.eval.evaluate import evaluate_tasks
    from domainspec.eval.generate import Shard
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.eval.passk import accuracy
    from domainspec.math.tir import completer
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grader = MathGrader(cfg.grader_mode)
    bench = ProblemSet(name)
    tasks = bench.tasks(problems)
    k = cfg.sampling.n
    results = {}
    for mode in cfg.modes:
        if mode == "tir" and sandbox is None:
            raise ValueError("TIR evaluation needs a sandbox")
        complete = completer(backend, mode, sandbox, tir_config)
        meta = {"set": name, "mode": mode}
        greedy = evaluate_tasks(bench, tasks, complete, cfg.sampling.greedy(), out / f"{name}_{mode}" / "greedy",
                                meta, grader=grader)
        sampled = None
        if k > 1 and tasks:
            sampled = evaluate_tasks(bench, tasks, complete, cfg.sampling, out / f"{name}_{mode}" / "sampled", meta,
                                     grader=grader, reward=_rm_reward(rm, rm_max_length) if rm is not None else None)
        if greedy is None:  # another rank than 0 under a launcher: it sampled its share, rank 0 scores
            continue
        metrics: dict[str, Any] = {"num_problems": len(tasks), "pass@1": greedy.summary["metrics"]["pass@1"], "k": k}
        if sampled is not None:
            m = sampled.summary["metrics"]
            metrics[f"maj@{k}"] = m[f"maj@{k}"]
            metrics["sample_accuracy"] = accuracy([r.passed for r in sampled.results])
            metrics["num_samples"] = len(sampled.results)
            if rm is not None:
                metrics[f"rm@{k}"] = m[f"rm@{k}"]
        metrics.update({"mode": mode, "set": name, "grader_mode": cfg.grader_mode, "grader_version": grader.version})
        results[mode] = metrics
        log.info("eval %s/%s: %s", name, mode, {x: v for x, v in metrics.items() if isinstance(v, float)})
    if Shard.from_env().rank == 0:
        write_json(results, out / f"metrics_{name}.json")
    return results
