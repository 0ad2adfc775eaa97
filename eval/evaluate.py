"""The one generate -> score path: sample completions for tasks, optionally score them with a reward
model, execute or grade them, aggregate, and write ``samples.jsonl``, ``results.jsonl``,
``summary.json`` and ``report.md`` into one folder.

The ``eval`` pipeline stage, the Coder held-out evaluation and the math loop's evaluation all call
:func:`evaluate_tasks`; they differ only in the tasks, the completer (benchmark prompts through a
backend, the Coder's chat request, CoT/TIR inference) and the sampling config. Aggregation is
:func:`domainspec.eval.scoring.score_samples` for every caller.

Usage::

    scored = evaluate_tasks(bench, tasks, prompted_completer(backend, bench, "chat"),
                            SamplingConfig(n=4, temperature=0.7), "out/humaneval", meta={"model": "m"})
    scored.summary["metrics"]["pass@1"], scored.results[0].status
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Sequence

from domainspec.common.artifacts import write_jsonl
from domainspec.common.models.sampling import SamplingConfig
from domainspec.common.pipeline import ranks
from domainspec.eval.benchmarks.base import Task
from domainspec.eval.generate import Completer, Shard, generate_samples
from domainspec.eval.scoring import Scored

log = logging.getLogger(__name__)

# scores for sample rows (task, completion) -> one float per row, e.g. a reward model's
Reward = Callable[[Sequence[Task], Sequence[dict]], Sequence[float]]


def add_reward_scores(tasks: Sequence[Task], rows: list[dict], reward: Reward) -> list[dict]:
    """``rows`` with ``score`` set from ``reward``; a reward returning the wrong number of scores is an error."""
    by_id = {t.task_id: t for t in tasks}
    scores = list(reward([by_id[str(r["task_id"])] for r in rows], rows))
    if len(scores) != len(rows):
        raise ValueError(f"reward function returned {len(scores)} scores for {len(rows)} samples")
    return [{**r, "score": float(x)} for r, x in zip(rows, scores)]


def evaluate_tasks(bench, tasks: Sequence[Task], complete: Completer, sampling: SamplingConfig,
                   out_dir: str | Path, meta: dict, *, resume: bool = False, ks: Sequence[int] = (1,),
                   grader=None, grader_mode: str = "strict", sandbox=None, sandbox_config=None,
                   reward: Reward | None = None, data_path: str | None = None, split: str | None = None,
                   limit: int | None = None, progress: bool = False) -> "Scored | None":
    """Generate ``sampling.n`` samples per task, score them, write the four artifacts; returns the typed
    per-sample results and the summary.

    ``resume``: keep the samples already in ``out_dir/samples.jsonl`` written with the same settings.
    Under a launcher (more than one rank) every rank calls this and samples its share of the tasks
    (data-parallel, :func:`generate_samples`); the reward scores and the execution / grading are split across
    the ranks too (``score_samples(across_ranks=True)``); rank 0 alone writes and returns the result, the
    other ranks return None.
    ``sandbox``/``grader``: live instances to reuse; otherwise they are made from
    ``sandbox_config``/``grader_mode`` and closed.
    """
    from domainspec.eval.score_report import write_outputs
    from domainspec.eval.scoring import run_settings, score_samples

    out = Path(out_dir)
    samples_path = out / "samples.jsonl"
    start = time.perf_counter()
    rows = generate_samples(tasks, complete, sampling, samples_path, meta, resume=resume)
    gen_s = time.perf_counter() - start
    shard = Shard.from_env()
    if shard.world > 1:  # every rank sampled its share and holds the merged rows: score them together
        ranks.start_ranks()
    if reward is not None:  # reward-model scores, split across ranks
        rows = ranks.split_map(rows, lambda part: add_reward_scores(tasks, part, reward))
        if shard.rank == 0:
            write_jsonl(rows, samples_path)
    scored = score_samples(bench, tasks, rows, ks=ks, grader_mode=grader_mode, sandbox_config=sandbox_config,
                           sandbox=sandbox, grader=grader, style=meta.get("style"), progress=progress,
                           across_ranks=True)
    if shard.rank != 0:  # rank 0 alone writes
        return None
    scored.summary["settings"] = run_settings(bench, data_path, samples_path, ks, limit, split, meta.get("style"),
                                              grader_mode, sandbox_config)
    scored.summary["sampling"] = sampling.to_dict()
    scored.summary["generation_s"] = round(gen_s, 2)
    write_outputs(scored, out)
    log.info("%s: %s on %d tasks x %d samples (generation %.0fs)", bench.name,
             ", ".join(f"{k}={v:.3f}" for k, v in scored.summary["metrics"].items()), scored.summary["num_tasks"],
             sampling.n, gen_s)
    return scored
