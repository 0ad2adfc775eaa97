"""EvalPlus programs for the sandbox: the reference run (expected outputs, cached) and a candidate's check.

Usage (what :meth:`EvalPlusBenchmark.prepare` and ``program`` do)::

    refs, info = reference_runs(sandbox, tasks, config)   # once per task and machine, then from the cache
    program = check_program(task, code, refs[task.task_id], per_input_limits=True)
    verdict = read_verdict(exec_result)                    # base / plus verdicts, typed status

The expected outputs are the canonical solution's, computed by running it in the same sandbox on
every base and plus input (``prompt + canonical_solution``, as EvalPlus does), and cached by content
hash (runner source, Python version, code, inputs, comparison rule) in
``$DOMAINSPEC_CACHE/evalplus_reference/<hash>.json`` with each input's runtime there. The host never
unpickles what the sandbox prints: expected outputs stay an opaque packed text that goes back into
the candidate programs; only the runtimes (JSON) are read. Outputs too large to keep (see
:mod:`~domainspec.eval.benchmarks.evalplus_runner`) are recomputed by each check program.

Time limits (EvalPlus's rule, ``gt_time_limit_factor`` 4, ``min_time_limit`` 1 s): input i of a task
may run ``max(limit_floor_s, limit_factor x t_i)`` where t_i is the reference's time on it here; the
whole program gets ``min(sum of its inputs' limits, cap) + factor x (the reference's time on the inputs
it recomputes) + 1 s`` with ``cap = max(ceiling, factor x sum t_i)`` (ceiling: ``limit_ceiling_s`` or
``timeout_s``). With ``time_limit: fixed`` there are no
per-input limits and the program gets ``timeout_s``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from domainspec.common.artifacts import DataFileError, content_hash, read_json, write_json
from domainspec.eval.benchmarks import evalplus_runner as runner

log = logging.getLogger(__name__)

PHASES = ("base", "plus")
STARTUP_S = 1.0  # added to a program's limit for unpacking inputs and loading the code (EvalPlus adds 1 s)
REFERENCE_LIMIT_FACTOR = 10  # a reference run may take 10 x the ceiling (trusted code, run once)
CACHE_SUBDIR = "evalplus_reference"


class ReferenceRunError(DataFileError):
    """A canonical solution that fails, times out or prints no outputs in the sandbox (names the task)."""


@lru_cache(maxsize=1)
def runner_source() -> str:
    return Path(runner.__file__).read_text(encoding="utf-8")


def runner_version() -> str:
    """The harness version in every cache key: the runner's source hash (an edit re-computes references)."""
    return f"{runner.RUNNER_VERSION}-{hashlib.sha256(runner_source().encode()).hexdigest()[:12]}"


@dataclass
class Reference:
    """One task's expected outputs (packed, opaque) and reference runtimes per phase."""

    entries: dict[str, str]  # phase -> packed list of expected entries
    times: dict[str, list[float]]  # phase -> seconds per input
    recompute: dict[str, list[int]]  # phase -> inputs whose output each check program recomputes
    cached: bool = False

    def limits(self, factor: float, floor_s: float, ceiling_s: float) -> tuple[dict[str, list[float]], float]:
        """Per-input limits for each phase and the whole program's wall-clock limit (module docstring)."""
        total = sum(sum(t) for t in self.times.values())
        cap = max(ceiling_s, factor * total)
        per_input = {p: [round(max(floor_s, factor * t), 3) for t in ts] for p, ts in self.times.items()}
        rerun = sum(self.times[p][i] for p, idx in self.recompute.items() for i in idx)
        return per_input, round(min(sum(sum(v) for v in per_input.values()), cap) + factor * rerun + STARTUP_S, 3)


def reference_code(task) -> str:
    return task.data["prompt"] + task.data["canonical_solution"]


def cache_key(task) -> str:
    d = task.data
    return content_hash({"runner": runner_version(), "python": platform.python_version(),
                         "code": reference_code(task), "entry_point": d["entry_point"],
                         "inputs": {p: d[f"{p}_input"] for p in PHASES}, "input_rule": d["input_rule"],
                         "oracle": d["oracle"]}, length=32)


def default_cache_dir() -> Path:
    from domainspec.common.models.loading import cache_dir  # the one $DOMAINSPEC_CACHE rule

    return cache_dir() / CACHE_SUBDIR


def _read_cached(path: Path) -> Reference | None:
    if not path.is_file():
        return None
    try:
        data = read_json(path)
        ref = Reference({p: data["entries"][p] for p in PHASES}, {p: [float(t) for t in data["times"][p]] for p in PHASES},
                        {p: [int(i) for i in data["recompute"][p]] for p in PHASES}, cached=True)
    except (DataFileError, KeyError, TypeError, ValueError) as e:
        log.warning("evalplus: reference cache entry %s unusable (%s); recomputing", path, e)
        return None
    return ref


def reference_program(task) -> str:
    d = task.data
    phases = {p: runner.pack(d["inputs"][p]) for p in PHASES}
    call = f"reference_outputs({reference_code(task)!r}, {d['entry_point']!r}, {phases!r}, oracle={d['oracle']!r})"
    return f"{runner_source()}\n\n{call}\n"


def _parse_reference(task, result) -> Reference:
    """The reference run's printed line: {phase: {"entries": packed, "times": [...]}} (JSON)."""
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith(runner.ORACLE_TAG)]
    if not result.passed or len(lines) != 1:
        why = (result.stderr.strip().splitlines() or [result.status.value])[-1][:300]
        if result.passed:
            why = ("its output line is missing or cut (the sandbox keeps the last max_output_bytes of stdout; "
                   "raise sandbox.max_output_bytes)")
        raise ReferenceRunError(f"evalplus: the canonical solution of {task.task_id} does not run in the sandbox "
                                f"({result.status.value}): {why}")
    try:
        data = json.loads(lines[0][len(runner.ORACLE_TAG):])
        return Reference(*({p: data[p][key] for p in PHASES} for key in ("entries", "times", "recompute")))
    except (ValueError, KeyError, TypeError) as e:
        raise ReferenceRunError(f"evalplus: the reference run of {task.task_id} printed an unreadable line "
                                f"({type(e).__name__}: {e})") from None


def reference_runs(sandbox, tasks: Sequence, config, cache_dir: Path | None = None) -> tuple[dict[str, Reference], dict]:
    """Each task's :class:`Reference`: from the cache, else run in ``sandbox`` (all at once) and cached."""
    folder = cache_dir or default_cache_dir()
    refs: dict[str, Reference] = {}
    todo = []
    for task in tasks:
        path = folder / f"{cache_key(task)}.json"
        ref = _read_cached(path)
        if ref is None:
            todo.append((task, path))
        else:
            refs[task.task_id] = ref
    if todo:
        ceiling = config.limit_ceiling_s or config.timeout_s
        log.info("evalplus: computing the expected outputs of %d tasks with their canonical solutions "
                 "(once per machine; cached in %s)", len(todo), folder)
        results = sandbox.run_many([reference_program(t) for t, _ in todo], timeout_s=REFERENCE_LIMIT_FACTOR * ceiling,
                                   desc="evalplus: reference outputs")
        bad = []
        for (task, path), result in zip(todo, results):
            try:
                ref = _parse_reference(task, result)
            except ReferenceRunError as e:
                bad.append(str(e))
                continue
            write_json({"task_id": task.task_id, "entries": ref.entries, "times": ref.times, "recompute": ref.recompute},
                       path, indent=None)
            refs[task.task_id] = ref
        if bad:
            raise ReferenceRunError(f"{len(bad)} canonical solution(s) fail in the sandbox; first: {bad[0]}"
                                    + (f"; also: {'; '.join(b.split(': ', 1)[-1] for b in bad[1:4])}" if len(bad) > 1 else ""))
    info = {"reference_outputs": {"cached": len(tasks) - len(todo), "computed": len(todo),
                                  "cache_dir": str(folder), "runner": runner_version()}}
    return refs, info


def check_program(task, code: str, ref: Reference, per_input: dict[str, list[float]] | None) -> str:
    """A program that runs ``code`` on the base then the plus inputs, stopping at the first wrong output."""
    d = task.data
    packed = d.get("_packed_inputs")
    if packed is None:  # packed once per task: the same text goes into each of its samples' programs
        packed = d["_packed_inputs"] = {p: runner.pack(d["inputs"][p]) for p in PHASES}
    phases = [(p, packed[p], ref.entries[p], None if per_input is None else per_input[p]) for p in PHASES]
    call = (f"untrusted_check({code!r}, {d['entry_point']!r}, {phases!r}, atol={float(d['atol'])!r}, "
            f"oracle={d['oracle']!r}, reference={reference_code(task)!r})")
    return f"{runner_source()}\n\n{call}\n"


@dataclass(frozen=True)
class Verdict:
    passed: bool  # base and plus
    status: Any  # Status of the whole sample
    base_passed: bool
    base_status: Any
    detail: str | None


def read_verdict(result) -> Verdict:
    """Base and plus verdicts of one check program's :class:`~domainspec.common.sandbox.pool.ExecResult`."""
    from domainspec.common.sandbox.pool import Status

    done = {ln[len(runner.PHASE_TAG):].strip() for ln in result.stdout.splitlines() if ln.startswith(runner.PHASE_TAG)}
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1][:300] if lines else ""
    status = Status(result.status)
    if status is Status.FAILED and runner.TIMEOUT_TAG in result.stderr:
        status = Status.TIMEOUT
    elif status is Status.FAILED and runner.SYNTAX_TAG in result.stderr:
        status = Status.ERROR
    passed = status is Status.PASSED and "plus" in done and "base" in done
    if status is Status.PASSED and not passed:  # ran to its end without both phase lines: not a pass
        status = Status.FAILED
    base_passed = "base" in done
    base_status = Status.PASSED if base_passed else status
    return Verdict(passed, status, base_passed, base_status, None if passed else last)
