"""The benchmark texts training data is decontaminated against: each registered benchmark's own rows.

The n-gram index itself is generic (:mod:`domainspec.common.data.decontam`); this module
says which file each benchmark reads (``local_copy``, ``decontam.files``) and which text of
a row counts (the benchmark's ``decontamination_texts``). The CPT data path (common) reaches
it through the import-path string ``common.data.decontam.TEXTS_PROVIDER``; the coder's
execution filter calls it directly.

Usage::

    from domainspec.common.data.decontam import BenchmarkIndex, DecontamConfig
    cfg = DecontamConfig(benchmarks=["humaneval"])
    index = BenchmarkIndex.from_texts(benchmark_texts(cfg), n=cfg.n)

Benchmark copies live under ``decontam.data_dir``, else ``$DOMAINSPEC_BENCHMARK_DATA``, else
``../shared/data`` beside the repository. A file missing from a location the user named
raises; missing from the built-in default location, it is skipped with a warning that says
what was not checked. Not here: hub downloads (decontamination reads local copies only).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from domainspec.common.data.sources import DataError
from domainspec.eval.benchmarks.base import field_texts
from domainspec.eval.benchmarks.registry import BENCHMARKS

log = logging.getLogger(__name__)

ENV = "DOMAINSPEC_BENCHMARK_DATA"


def default_data_dir() -> Path:
    """``$DOMAINSPEC_BENCHMARK_DATA``, else ``../shared/data`` beside the repository."""
    env = os.environ.get(ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"  # <repo>/eval/benchmarks/x.py -> ../shared/data


def benchmark_texts(cfg) -> Iterator[tuple[str, str, str]]:
    """``(benchmark, task id, text)`` for every row of every benchmark ``cfg`` (a DecontamConfig) names.

    Benchmarks come in ``cfg.benchmarks`` order (None: every registered one, in registration
    order), rows in file order. A name that is not registered needs its file in ``cfg.files``;
    its rows count with every string field.
    """
    base = Path(cfg.data_dir) if cfg.data_dir else default_data_dir()
    for name in cfg.benchmarks if cfg.benchmarks is not None else list(BENCHMARKS):
        bench = BENCHMARKS.get(name)
        if name in cfg.files:
            path = Path(cfg.files[name]).expanduser()
        elif bench is not None:
            path = bench.local_copy(base)
        else:
            raise DataError(f"decontam.benchmarks: {name!r} is not a registered benchmark "
                            f"({', '.join(sorted(BENCHMARKS))}); give its path in decontam.files.{name}")
        if not path.is_file():
            msg = f"decontamination: benchmark file for {name!r} not found at {path}"
            # a location the user named must exist; the built-in default location may not
            # (a machine without the benchmark files): then say loudly what was not checked
            named = name in cfg.files or cfg.data_dir or os.environ.get(ENV)
            if cfg.missing_ok or not named:
                log.warning("%s; NOT decontaminated against %s (set decontam.data_dir or decontam.files)", msg, name)
                continue
            raise DataError(msg + " (set decontam.data_dir or decontam.files, or missing_ok: true)")
        rows = bench.decontamination_texts(path) if bench is not None else field_texts(path)
        for task_id, text in rows:
            yield name, task_id, text
