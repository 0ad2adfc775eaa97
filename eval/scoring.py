"""Score samples against a benchmark: execute (code) or grade (math), aggregate, write the report.

Usage::

    summary = score("humaneval", "samples.jsonl", "out/", ks=(1, 10))     # what `domainspec eval score` runs
    scored = score_samples(get_benchmark("gsm8k"), tasks, rows, grader=g)  # in memory (eval/evaluate.py)

The chain is pure stages with thin ends: read samples -> build programs
(benchmark.program) or gold answers (benchmark.gold) -> run them with ONE
:class:`~domainspec.common.sandbox.pool.Sandbox` (``run_many``) or grade them with ONE
:class:`~domainspec.eval.grader.math_grader.MathGrader` -> aggregate (pass@k, maj@k,
rm@k) -> write ``results.jsonl``, ``summary.json`` and ``report.md``
(DESIGN.md fixes their fields). A sample's ``sample_index`` is its 0-based
position among the rows with the same task_id. Tasks without samples are left
out of the metrics and counted in ``tasks_without_samples``.
"""
from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from domainspec.common.artifacts import read_jsonl
from domainspec.common.pipeline import ranks
from domainspec.common.sandbox.pool import Status
from domainspec.eval.datafiles import EvalDataError
from domainspec.eval.passk import majority_correct, mean_pass_at_k, reward_best_correct
from domainspec.eval.benchmarks.base import Kind, Task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleResult:
    """One sample's verdict: a row of results.jsonl (DESIGN.md fixes the fields), typed until written."""

    task_id: str
    sample_index: int
    passed: bool
    status: Status
    extracted: str | None = None  # the final answer found (math)
    detail: str | None = None  # why a program failed (code): the last stderr line
    score: float | None = None  # the reward model's score of the sample, when given (rm@k)
    time_limit_s: float | None = None  # the wall-clock limit its program ran under (code)
    base_passed: bool | None = None  # HumanEval+/MBPP+: the verdict of the base tests alone ("passed" = base and plus)
    base_status: Status | None = None

    def to_row(self) -> dict:
        row = {"task_id": self.task_id, "sample_index": self.sample_index, "passed": self.passed,
               "status": self.status.value, "extracted": self.extracted}
        if self.detail is not None:
            row["detail"] = self.detail
        if self.time_limit_s is not None:
            row["time_limit_s"] = self.time_limit_s
        if self.base_passed is not None:
            row["base_passed"] = self.base_passed
            row["base_status"] = self.base_status.value if self.base_status is not None else None
        return row


@dataclass
class Scored:
    """Per-sample results (the rows of results.jsonl) and the summary (summary.json)."""

    results: list[SampleResult]
    summary: dict
    per_task: dict = field(default_factory=dict)  # metric -> task id -> value (per_task.json)


def read_samples(path: str | Path) -> list[dict]:
    """Rows of a samples file; each needs a ``task_id`` and a string ``completion`` (errors name the line)."""
    out = []
    for where, row in read_jsonl(path):
        if row.get("task_id") is None:
            raise EvalDataError(f"{where}: sample has no 'task_id'")
        if not isinstance(row.get("completion"), str):
            got = "no 'completion'" if "completion" not in row else f"'completion' of type {type(row['completion']).__name__}"
            raise EvalDataError(f"{where}: sample needs a string 'completion', got {got}")
        if "score" in row and not isinstance(row["score"], (int, float)):
            raise EvalDataError(f"{where}: 'score' should be a number, got {row['score']!r}")
        out.append({**row, "_where": where})
    return out


def sample_indices(task_ids: Sequence[str]) -> list[int]:
    """0-based position of each sample among the samples sharing its task_id, in order."""
    seen: Counter = Counter()
    out = []
    for tid in task_ids:
        out.append(seen[tid])
        seen[tid] += 1
    return out


def check_known_ids(samples: Sequence[dict], known: set[str], bench: str) -> None:
    unknown: dict[str, str] = {}
    for s in samples:
        tid = str(s["task_id"])
        if tid not in known and tid not in unknown:
            unknown[tid] = s.get("_where", "samples")
    if unknown:
        few = ", ".join(f"{t!r} ({w})" for t, w in list(unknown.items())[:5])
        examples = ", ".join(repr(t) for t in sorted(known)[:3])
        raise EvalDataError(f"{len(unknown)} sample task_id(s) not in the {bench} data: {few}"
                            f"{' ...' if len(unknown) > 5 else ''} (data ids look like {examples})")


def _stderr_detail(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _execute(bench, tasks_by_id, samples, sandbox, sandbox_config, progress) -> tuple[list[tuple], dict]:
    from domainspec.common.sandbox.pool import Sandbox, SandboxConfig

    own = sandbox is None
    sb = Sandbox(sandbox_config) if own else sandbox
    try:
        cfg = getattr(sb, "config", None) or sandbox_config or SandboxConfig()
        # optional part of the code-benchmark interface: benchmarks whose tests compare outputs with the
        # reference's compute those (and their own time limits) in this sandbox first (HumanEval+, MBPP+)
        prepare = getattr(bench, "prepare", None)
        if prepare is not None:
            sampled = [tasks_by_id[tid] for tid in dict.fromkeys(str(s["task_id"]) for s in samples)]
            limits, limit_info = prepare(sampled, sb, cfg)
        else:
            limits, limit_info = _time_limits(bench, tasks_by_id, samples, sb, cfg)
        programs = [bench.program(tasks_by_id[str(s["task_id"])], s["completion"]) for s in samples]
        execs = sb.run_many(programs, timeout_s=[limits[str(s["task_id"])] for s in samples],
                            progress=progress, desc=f"{bench.name}: executing")
        info = {"level": sb.level, **{k: getattr(cfg, k) for k in ("timeout_s", "memory_mb", "workers")}}
        info["workers"] = info["workers"] or os.cpu_count()  # None means one per core
        info.update(limit_info)  # time_limit mode, its settings, and time_limits_s: task -> the limit used
    finally:
        if own:
            sb.close()
    read = getattr(bench, "verdict", None)  # optional: a benchmark that reads more than pass/fail from a run
    verdicts = []
    for s, r in zip(samples, execs):
        if read is None:
            verdicts.append((bool(r.passed), Status(r.status), None, None if r.passed else _stderr_detail(r.stderr),
                             r.time_limit_s, {}))
        else:
            v = read(tasks_by_id[str(s["task_id"])], r)
            verdicts.append((v.passed, v.status, None, v.detail, r.time_limit_s,
                             {"base_passed": v.base_passed, "base_status": v.base_status}))
    return verdicts, {"sandbox": info}


def _time_limits(bench, tasks_by_id, samples, sandbox, config) -> tuple[dict[str, float], dict]:
    """Each sampled task's wall-clock limit, calibrated on ``program(task, reference)`` where the
    benchmark offers ``reference_completion`` (an optional part of the code-benchmark interface)."""
    from domainspec.common.sandbox.time_limits import time_limits

    reference = getattr(bench, "reference_completion", None)
    refs = {}
    for tid in dict.fromkeys(str(s["task_id"]) for s in samples):
        completion = reference(tasks_by_id[tid]) if reference is not None else None
        refs[tid] = None if completion is None else bench.program(tasks_by_id[tid], completion)
    return time_limits(sandbox, config, refs)


def _grade(bench, tasks_by_id, samples, grader, grader_mode, progress) -> tuple[list[dict], dict, Any]:
    from domainspec.eval.grader.math_grader import MathGrader

    grader = grader or MathGrader.for_benchmark(bench, grader_mode)
    golds = {tid: bench.gold(t) for tid, t in tasks_by_id.items()}
    pairs = [(s["completion"], golds[str(s["task_id"])]) for s in samples]
    grades = grader.grade_many(pairs, progress=progress)
    verdicts = [(bool(g.correct), Status.PASSED if g.correct else Status.FAILED, g.extracted, None, None, {})
                for g in grades]
    return verdicts, {"grader": {"mode": grader.mode, "version": grader.version, "dataset": grader.dataset,
                                 "currency": grader.currency}}, grader


def _metrics(per_task: dict[str, list[SampleResult]], ks: Sequence[int], grader) -> tuple[dict, dict, dict]:
    """THE aggregation: pass@k for each k (and accuracy, maj@k, rm@k for math) over tasks with samples;
    metrics that cannot be computed are returned with why, and each metric's per-task values
    (metric -> task -> value; the metric is their mean) for standard errors and run comparison."""
    from domainspec.eval.passk import pass_at_k

    metrics: dict[str, float] = {}
    skipped: dict[str, str] = {}
    values: dict[str, dict[str, float]] = {}
    counts = {tid: (len(rs), sum(r.passed for r in rs)) for tid, rs in per_task.items()}
    if not counts:
        return metrics, {"all": "no samples"}, values
    n_min = min(n for n, _ in counts.values())
    for k in sorted(set(ks)):
        value = mean_pass_at_k(list(counts.values()), k)
        if value is None:
            skipped[f"pass@{k}"] = f"needs >= {k} samples per task; the fewest is {n_min}"
        else:
            metrics[f"pass@{k}"] = value
            values[f"pass@{k}"] = {tid: pass_at_k(n, c, k) for tid, (n, c) in counts.items()}
    if all(r.base_passed is not None for rs in per_task.values() for r in rs):
        # HumanEval+/MBPP+: pass@k counts samples passing base and plus tests; base_pass@k the base tests alone
        base = {tid: (len(rs), sum(bool(r.base_passed) for r in rs)) for tid, rs in per_task.items()}
        for k in sorted(set(ks)):
            value = mean_pass_at_k(list(base.values()), k)
            if value is not None:
                metrics[f"base_pass@{k}"] = value
                values[f"base_pass@{k}"] = {tid: pass_at_k(n, c, k) for tid, (n, c) in base.items()}
    if grader is not None:
        # the grader owns the convention: strict = mean over all samples, qwen-compat = first sample
        metrics["accuracy"] = grader.accuracy([[r.passed for r in rs] for rs in per_task.values()])
        values["accuracy"] = {tid: grader.accuracy([[r.passed for r in rs]]) for tid, rs in per_task.items()}
        vote_ks = sorted({k for k in ks if 1 < k <= n_min} | ({n_min} if n_min > 1 else set()))
        for k in vote_ks:
            hits = {tid: float(majority_correct([r.extracted for r in rs], [r.passed for r in rs], k,
                                                vote=grader.majority_vote, equivalent=grader.equiv))
                    for tid, rs in per_task.items()}
            metrics[f"maj@{k}"] = sum(hits.values()) / len(hits)
            values[f"maj@{k}"] = hits
        if all(isinstance(r.score, (int, float)) for rs in per_task.values() for r in rs):
            for k in sorted({k for k in ks if k <= n_min} | {n_min}):
                hits = {tid: float(reward_best_correct([r.score for r in rs], [r.passed for r in rs], k))
                        for tid, rs in per_task.items()}
                metrics[f"rm@{k}"] = sum(hits.values()) / len(hits)
                values[f"rm@{k}"] = hits
    n_max = max(n for n, _ in counts.values())
    if n_min == n_max > 1:  # avg@n: the mean correctness of all n samples, the same for every task
        values[f"avg@{n_min}"] = {tid: c / n for tid, (n, c) in counts.items()}
        metrics[f"avg@{n_min}"] = sum(values[f"avg@{n_min}"].values()) / len(counts)
    return metrics, skipped, values


def _breakdown(bench, tasks_by_id, per_task) -> dict:
    """pass@1 by each breakdown key of the benchmark (MATH: subject and level); none without ``breakdown``."""
    breakdown = getattr(bench, "breakdown", None)  # optional part of the Benchmark interface
    if breakdown is None:
        return {}
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for tid, rs in per_task.items():
        acc = sum(r.passed for r in rs) / len(rs)
        for key, value in breakdown(tasks_by_id[tid]).items():
            groups[key][str(value)].append(acc)
    return {key: {v: {"tasks": len(a), "pass@1": sum(a) / len(a)} for v, a in sorted(vals.items())}
            for key, vals in groups.items()}


def _protocol(bench, samples, style) -> str:
    if style is None:
        styles = {s.get("style") for s in samples}
        style = styles.pop() if len(styles) == 1 else None
        if style is None and len(styles) > 0:
            return f"{bench.name}: mixed generation styles in the samples ({sorted(map(str, styles | {None}))})"
    return bench.protocol(style)


def _judge_across_ranks(samples: Sequence[dict], judge) -> tuple[list[tuple], dict, Any]:
    """``judge(samples)`` split by task across the process group's ranks; every rank returns all verdicts
    (sample order) and the merged info (each rank's per-task entries, e.g. time limits, joined)."""
    rank, world = ranks.rank_world()
    task_ids = list(dict.fromkeys(str(s["task_id"]) for s in samples))
    mine = set(task_ids[rank::world])
    idx = [i for i, s in enumerate(samples) if str(s["task_id"]) in mine]
    # a rank without tasks judges none (its grader still serves the metrics: maj@k)
    verdicts, info, grader = judge([samples[i] for i in idx])
    parts = ranks.gather((idx, verdicts, info))
    merged: list = [None] * len(samples)
    infos = []
    for part_idx, part_verdicts, part_info in parts:
        for i, v in zip(part_idx, part_verdicts):
            merged[i] = v
        infos.append(part_info)
    if any(v is None for v in merged):  # a rank that judged fewer samples than it was given
        raise RuntimeError(f"scoring across {world} ranks: {sum(v is None for v in merged)} samples have no verdict")
    info = _merge_info(infos)
    info["ranks"] = {"world": world, "samples_per_rank": [len(p[0]) for p in parts]}
    return merged, info, grader


def _merge_info(infos: Sequence[dict]) -> dict:
    """The ranks' scoring info as one: per-task dicts (time_limits_s, ...) joined, the rest rank 0's."""
    out: dict = {}
    for info in infos:
        for key, value in info.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _merge_info([out[key], value])
            else:
                out.setdefault(key, value)
    return out


def score_samples(benchmark, tasks: Sequence[Task], samples: Sequence[dict], ks: Sequence[int] = (1,),
                  grader_mode: str = "strict", sandbox_config=None, sandbox=None, grader=None,
                  style: str | None = None, progress: bool = False, across_ranks: bool = False) -> Scored:
    """Score ``samples`` (dicts with ``task_id``, ``completion``, optional ``score``/``style``) on ``tasks``.

    ``across_ranks``: every rank of the launcher's process group calls this with the same samples; each
    executes or grades the samples of its share of the tasks (task j of the sampled ones to rank j % world,
    so a task's time-limit calibration runs once) and every rank gets the whole result
    (``summary["ranks"]``: samples judged per rank).

    ``sandbox``/``grader``: pass a live instance to reuse it (training loops);
    otherwise one is made from ``sandbox_config``/``grader_mode`` and closed after.
    A sample whose task_id is not among ``tasks`` raises :class:`EvalDataError`.
    """
    from domainspec.eval.benchmarks.registry import get_benchmark

    bench = get_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    start = time.perf_counter()
    tasks_by_id = {t.task_id: t for t in tasks}
    check_known_ids(samples, set(tasks_by_id), bench.name)
    idx = sample_indices([str(s["task_id"]) for s in samples])
    used_grader = None

    def judge(part: Sequence[dict]) -> tuple[list[tuple], dict, Any]:
        # the one place where code and math differ: programs run in the sandbox, answers go to the grader
        if bench.kind is Kind.CODE:
            return (*_execute(bench, tasks_by_id, part, sandbox, sandbox_config, progress), None)
        return _grade(bench, tasks_by_id, part, grader, grader_mode, progress)
    if across_ranks and ranks.rank_world()[1] > 1:
        verdicts, info, used_grader = _judge_across_ranks(samples, judge)
    else:
        verdicts, info, used_grader = judge(samples)
    results: list[SampleResult] = []
    per_task: dict[str, list[SampleResult]] = {t.task_id: [] for t in tasks}
    for s, i, (passed, status, extracted, detail, limit, extra) in zip(samples, idx, verdicts):
        r = SampleResult(str(s["task_id"]), i, passed, status, extracted, detail, s.get("score"), limit, **extra)
        results.append(r)
        per_task[r.task_id].append(r)
    with_samples = {tid: rs for tid, rs in per_task.items() if rs}
    metrics, skipped, per_task_values = _metrics(with_samples, ks, used_grader)
    for name, why in skipped.items():
        log.warning("%s: %s not computed: %s", bench.name, name, why)
    missing = len(per_task) - len(with_samples)
    if missing:
        log.warning("%s: %d of %d tasks have no samples and are left out of the metrics",
                    bench.name, missing, len(per_task))
    ns = [len(rs) for rs in with_samples.values()] or [0]
    summary = {
        "benchmark": bench.name,
        "num_tasks": len(with_samples),
        "num_samples": len(results),
        "metrics": metrics,
        "benchmark_version": bench.version,
        "protocol": _protocol(bench, samples, style),
        **info,
        "samples_per_task": {"min": min(ns), "max": max(ns)},
        "status_counts": dict(Counter(r.status.value for r in results)),
        "tasks_without_samples": missing,
        "skipped_metrics": skipped,
        "breakdown": _breakdown(bench, tasks_by_id, with_samples),
        "duration_s": round(time.perf_counter() - start, 3),
    }
    from domainspec.eval.uncertainty import uncertainty

    summary["uncertainty"] = uncertainty({m: list(v.values()) for m, v in per_task_values.items()})
    return Scored(results=results, summary=summary, per_task=per_task_values)


def score(benchmark_name: str, samples_path: str | Path, out_dir: str | Path, data_path: str | None = None,
          ks: Sequence[int] = (1,), grader_mode: str = "strict", sandbox_config=None, limit: int | None = None,
          split: str | None = None, style: str | None = None, progress: bool = True) -> dict:
    """Score a samples file and write results.jsonl, summary.json and report.md into ``out_dir``; returns the summary.

    ``limit`` keeps the first L tasks of the data (samples of later tasks are
    ignored; sample ids unknown to the whole data set still raise).
    """
    from domainspec.eval.benchmarks.registry import get_benchmark
    from domainspec.eval.score_report import write_outputs

    bench = get_benchmark(benchmark_name)
    if any(k < 1 for k in ks):
        raise EvalDataError(f"k values must be >= 1, got {list(ks)}")
    samples = read_samples(samples_path)
    if not samples:
        raise EvalDataError(f"{samples_path}: no samples")
    all_tasks = bench.load(data_path, split=split)
    check_known_ids(samples, {t.task_id for t in all_tasks}, bench.name)
    tasks = all_tasks[:limit] if limit is not None else all_tasks
    keep = {t.task_id for t in tasks}
    kept = [s for s in samples if str(s["task_id"]) in keep]
    if not kept:
        raise EvalDataError(f"{samples_path}: no samples for the first {limit} {bench.name} tasks")
    if len(kept) < len(samples):
        log.info("%s: --limit %s: ignoring %d samples of later tasks", bench.name, limit, len(samples) - len(kept))
    log.info("%s: scoring %d samples on %d tasks (%s)", bench.name, len(kept), len(tasks),
             data_path or "default data")
    scored = score_samples(bench, tasks, kept, ks=ks, grader_mode=grader_mode,
                           sandbox_config=sandbox_config, style=style, progress=progress)
    scored.summary["settings"] = run_settings(bench, data_path, samples_path, ks, limit, split, style, grader_mode,
                                              sandbox_config)
    write_outputs(scored, out_dir)
    return scored.summary


def run_settings(bench, data_path: str | None, samples_path: str | Path, ks: Sequence[int], limit: int | None,
                 split: str | None, style: str | None, grader_mode: str, sandbox_config) -> dict:
    """What a summary records about how it was made: data and samples (with content hashes), k, limits, modes."""
    from domainspec.common.artifacts import file_sha256

    default = getattr(bench, "default_source", None)
    data_file = Path(data_path) if data_path else (Path(default()) if default else None)
    settings = {
        "ks": sorted(set(ks)), "limit": limit, "split": split, "style": style,
        "grader_mode": grader_mode if bench.kind is Kind.MATH else None,
        "data": str(data_path) if data_path else f"default ({getattr(bench, 'hub_name', 'packaged')})",
        "data_sha256": file_sha256(data_file) if data_file and data_file.is_file() else None,
        "samples": str(samples_path), "samples_sha256": file_sha256(samples_path),
        "sandbox_config": sandbox_config.to_dict() if hasattr(sandbox_config, "to_dict") else None,
    }
    if data_path is None and data_file is not None:
        settings["data"] = f"default: {data_file}"
    return settings
