"""Benchmark decontamination: drop training documents sharing an n-gram with a benchmark.

As in the Qwen2.5-Coder/Math reports: a training document is removed when it shares
any word 10-gram (``n``, configurable) with a benchmark's prompts or solutions.
Words are ``\\w+`` runs, lower-cased, so whitespace and punctuation differences do
not hide a copy. Benchmark n-grams are hashed into one dict (hash -> where it came
from), so checking a document costs one lookup per n-gram.

The index is generic: it takes ``(benchmark, task id, text)`` triples from its caller. The
benchmarks own their text and where their local copy lives
(:mod:`domainspec.eval.benchmarks.decontamination`); the engine reaches them through the
import-path string :data:`TEXTS_PROVIDER`, resolved at run time (imports flow common <- eval).

Usage::

    index = BenchmarkIndex.from_texts(provided_texts(cfg), n=cfg.n)   # or any (benchmark, id, text) triples
    kept = list(decontaminate(docs, index, dropped_path="out/dropped.jsonl"))

``dropped.jsonl`` holds one row per dropped document: ``doc_id``, ``benchmark``,
``task_id`` and the matching ``ngram``. Not here: fuzzy/embedding-based matching.
"""
from __future__ import annotations

import importlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import Field

from domainspec.common.config import Config

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")
# "module:function" giving (benchmark, task id, text) triples for a DecontamConfig
TEXTS_PROVIDER = "domainspec.eval.benchmarks.decontamination:benchmark_texts"


class DecontamConfig(Config):
    enabled: bool = Field(True, description="Run decontamination.")
    n: int = Field(10, ge=3, description="Word n-gram length shared with a benchmark that drops a document "
                                        "(10, as in Qwen2.5-Coder).")
    benchmarks: list[str] | None = Field(None, description="Benchmarks to decontaminate against, by registered name "
                                                           "(None = every registered benchmark).")
    data_dir: str | None = Field(None, description="Folder holding the benchmarks' local copies; default "
                                                  "$DOMAINSPEC_BENCHMARK_DATA or ../shared/data beside the repo.")
    files: dict[str, str] = Field({}, description="Benchmark name -> JSONL file, overriding its local copy "
                                                  "(a name no benchmark registers counts every string field).")
    missing_ok: bool = Field(False, description="Skip (with a warning) benchmarks whose file is absent from a "
                                                "named data_dir/files instead of stopping (files absent from the "
                                                "default location are always skipped with a warning).")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> Iterator[tuple[str, ...]]:
    w = words(text)
    for i in range(len(w) - n + 1):
        yield tuple(w[i:i + n])


def provided_texts(cfg: DecontamConfig) -> Iterable[tuple[str, str, str]]:
    """The benchmark texts ``cfg`` names, from :data:`TEXTS_PROVIDER` (a broken registration raises)."""
    module, _, attr = TEXTS_PROVIDER.partition(":")
    try:
        provider = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"decontamination: TEXTS_PROVIDER {TEXTS_PROVIDER} does not load: {e}") from e
    return provider(cfg)


@dataclass(frozen=True)
class Match:
    benchmark: str
    task_id: str
    ngram: str


class BenchmarkIndex:
    """Hashed word n-grams of benchmark texts -> (benchmark, task id)."""

    def __init__(self, n: int = 10):
        self.n = n
        self._index: dict[int, tuple[str, str]] = {}
        self.sizes: dict[str, int] = {}

    def add(self, benchmark: str, task_id: str, text: str) -> None:
        for g in ngrams(text, self.n):
            self._index.setdefault(hash(g), (benchmark, task_id))
        self.sizes[benchmark] = self.sizes.get(benchmark, 0) + 1

    def __len__(self) -> int:
        return len(self._index)

    def find(self, text: str) -> Match | None:
        """The first benchmark n-gram found in ``text``, or None."""
        w = words(text)
        for i in range(len(w) - self.n + 1):
            g = tuple(w[i:i + self.n])
            hit = self._index.get(hash(g))
            if hit is not None:
                return Match(hit[0], hit[1], " ".join(g))
        return None

    @classmethod
    def from_texts(cls, texts: Iterable[tuple[str, str, str]], n: int = 10) -> "BenchmarkIndex":
        """An index of ``(benchmark, task id, text)`` triples; the first text holding an n-gram names it."""
        index = cls(n)
        for benchmark, task_id, text in texts:
            index.add(benchmark, task_id, text)
        log.info("decontamination index: %d %d-grams from %s", len(index), index.n, index.sizes)
        return index


def decontaminate(docs: Iterable[str | tuple], index: BenchmarkIndex,
                  dropped_path: str | Path | None = None, stats: dict | None = None) -> Iterator:
    """Yield the documents sharing no n-gram with the index; log the others to ``dropped_path``.

    ``docs``: texts (id = position) or ``(doc_id, text, ...)`` tuples; kept items are
    yielded exactly as given. ``stats`` (optional dict)
    receives ``kept``, ``dropped`` and per-benchmark counts when the stream is exhausted.
    """
    out = None
    if dropped_path is not None:
        Path(dropped_path).parent.mkdir(parents=True, exist_ok=True)
        out = open(dropped_path, "w", encoding="utf-8")
    kept = dropped = 0
    per: dict[str, int] = {}
    try:
        for i, d in enumerate(docs):
            doc_id, text = (str(i), d) if isinstance(d, str) else (str(d[0]), d[1])
            m = index.find(text)
            if m is None:
                kept += 1
                yield d
                continue
            dropped += 1
            per[m.benchmark] = per.get(m.benchmark, 0) + 1
            if out is not None:
                out.write(json.dumps({"doc_id": doc_id, "benchmark": m.benchmark, "task_id": m.task_id,
                                      "ngram": m.ngram}) + "\n")
    finally:
        if out is not None:
            out.close()
    if stats is not None:
        stats.update(kept=kept, dropped=dropped, by_benchmark=per)
    if dropped:
        log.info("decontamination: dropped %d of %d documents %s", dropped, kept + dropped, per)
