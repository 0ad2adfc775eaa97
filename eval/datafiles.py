"""Reading benchmark rows and sample files: local JSONL (optionally gzipped) or hub datasets.

Usage::

    rows = load_rows("../shared/data/gsm8k/test.jsonl")          # [(where, row), ...]
    rows = load_rows("openai/gsm8k:main", split="test")          # datasets.load_dataset
    ids = unique_ids(rows)                                        # row ids (common.artifacts.row_id)

A local ``.jsonl``/``.jsonl.gz``/``.json`` file is read by :func:`domainspec.common.artifacts.read_jsonl`,
so a bad line is reported as ``path:line``; a folder or a hub name (``name`` or
``name:config``) goes through ``datasets.load_dataset`` (parquet/csv files too).
Every problem raises :class:`EvalDataError` naming the file and line (or the hub
split and row). This module does not know benchmark formats; the benchmark
modules check their own fields with :func:`require`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from domainspec.common.artifacts import DataFileError, Row, read_jsonl, row_id

LOCAL_JSON_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")
# files datasets' packaged builders read (load_dataset(<builder>, data_files=...))
LOCAL_BUILDER_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".arrow": "arrow"}

# one error type for every data file (common.artifacts); the old name stays for eval's callers
EvalDataError = DataFileError


def _looks_local(source: str) -> bool:
    """A source that names a file (so a missing one is 'no such file', not a hub lookup)."""
    return (source.startswith((".", "/", "~")) or source.endswith(LOCAL_JSON_SUFFIXES)
            or Path(source).suffix in LOCAL_BUILDER_SUFFIXES)


def load_rows(source: str | Path, split: str = "test", hub_config: str | None = None) -> list[Row]:
    """Rows from a local file, a local folder or a hub dataset.

    ``source`` may be ``name:config`` for a hub dataset with a config
    (``openai/gsm8k:main``); ``hub_config`` is the default config when none is given.
    """
    source = str(source)
    path = Path(source).expanduser()
    if path.is_file():
        if path.name.endswith(LOCAL_JSON_SUFFIXES):
            return read_jsonl(path)
        builder = LOCAL_BUILDER_SUFFIXES.get(path.suffix)
        if builder is None:
            raise EvalDataError(f"{path}: unsupported file type (expected one of "
                                f"{', '.join(LOCAL_JSON_SUFFIXES + tuple(LOCAL_BUILDER_SUFFIXES))})")
        return _load_with_datasets(builder, None, split="train", data_files=str(path), label=str(path))
    if path.is_dir():
        return _load_with_datasets(str(path), None, split=split, label=str(path))
    if _looks_local(source):
        raise EvalDataError(f"{source}: no such file")
    name, _, config = source.partition(":")
    return _load_with_datasets(name, config or hub_config, split=split, label=source)


def _load_with_datasets(name: str, config: str | None, split: str, label: str,
                        data_files: str | None = None) -> list[Row]:
    import datasets  # heavy: only when a folder, a hub name or a parquet/csv file is given

    try:
        ds = datasets.load_dataset(name, config, split=split, data_files=data_files)
    except Exception as e:  # datasets raises many types (offline, missing split/config, bad file)
        raise EvalDataError(f"{label}: could not load with datasets.load_dataset "
                            f"(config={config!r}, split={split!r}): {type(e).__name__}: {e}") from e
    return [(f"{label}[{split}]#{i}", dict(row)) for i, row in enumerate(ds)]


def require(row: dict, where: str, fields: Iterable[str], types: dict[str, type | tuple] | None = None) -> None:
    """Raise :class:`EvalDataError` naming ``where`` when a field is missing or has the wrong type."""
    missing = [f for f in fields if f not in row]
    if missing:
        raise EvalDataError(f"{where}: missing field(s) {', '.join(map(repr, missing))} "
                            f"(row has: {', '.join(sorted(row)) or 'nothing'})")
    for key, typ in (types or {}).items():
        if key in row and not isinstance(row[key], typ):
            expected = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise EvalDataError(f"{where}: field {key!r} should be {expected}, "
                                f"got {type(row[key]).__name__}")


def unique_ids(rows: list[Row]) -> list[str]:
    """Ids of ``rows`` (:func:`domainspec.common.artifacts.row_id`); a repeated id raises naming both rows."""
    seen: dict[str, str] = {}
    ids = []
    for i, (where, row) in enumerate(rows):
        tid = row_id(row, i)
        if tid in seen:
            raise EvalDataError(f"{where}: duplicate id {tid!r} (first at {seen[tid]})")
        seen[tid] = where
        ids.append(tid)
    return ids
