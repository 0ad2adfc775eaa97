"""Plain artifacts on disk: JSONL / JSON read and write, atomic writes, content hashes, row ids.

Every reader names where a bad row is (``path:line``); every writer replaces its target
atomically (a crash leaves the old file or the new one, never half of one). Content hashes,
never "a file exists", key caches and skip decisions (STYLE.md #8).

Usage::

    rows = read_jsonl("samples.jsonl")            # [(where, row), ...], where = "samples.jsonl:3"
    write_jsonl(rows, "out/sft.jsonl")            # atomic
    write_json({"hash": h}, "out/.done.json")     # atomic
    h = content_hash({"a": 1})                    # 16 hex digits of sha256 over canonical JSON
    tid = row_id(row, index)                      # task_id > unique_id > idx > id > index, as a string
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

Row = tuple[str, dict]  # (where: "path:line" or "path[i]", the row)

# the id fields a data row may carry, in order of precedence (DESIGN.md: task_id > unique_id > idx > row number;
# `id` (the math problem files this product writes) ranks just above the row number)
ID_FIELDS = ("task_id", "unique_id", "idx", "id")


class DataFileError(ValueError):
    """A data, samples or artifact file that cannot be used; the message names the file and line."""


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _as_object(item: Any, where: str) -> dict:
    if not isinstance(item, dict):
        raise DataFileError(f"{where}: expected a JSON object, got {type(item).__name__}")
    return item


def iter_jsonl(path: str | Path, tolerate_torn_tail: bool = False) -> Iterator[Row]:
    """Rows of a JSON-lines file (``.gz`` ok; blank lines skipped), each with its ``path:line``, streamed.

    ``tolerate_torn_tail``: a last line that is not valid JSON and has no newline (a writer killed
    mid-line) is dropped instead of raising. A ``.json`` file holding one array of objects is read whole.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        if path.name.endswith((".json", ".json.gz")):
            with _open_text(path) as fh:
                text = fh.read()
            if text.lstrip().startswith("["):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError as e:
                    raise DataFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
                for i, item in enumerate(items):
                    yield f"{path}[{i}]", _as_object(item, f"{path}[{i}]")
                return
            # split on "\n" only, as reading the file line by line does (str.splitlines would also
            # split inside a JSON string holding a raw U+2028)
            yield from _parse_lines(path, io.StringIO(text), tolerate_torn_tail)
            return
        with _open_text(path) as fh:
            yield from _parse_lines(path, fh, tolerate_torn_tail)
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise DataFileError(f"{path}: cannot read: {e}") from e


def _parse_lines(path: Path, lines: Iterable[str], tolerate_torn_tail: bool) -> Iterator[Row]:
    pending: tuple[str, str, json.JSONDecodeError] | None = None
    for lineno, line in enumerate(lines, start=1):
        if pending is not None:  # a bad line followed by more lines is not a torn tail
            raise DataFileError(f"{pending[0]}: not valid JSON ({pending[2].msg} at column {pending[2].colno})")
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            if tolerate_torn_tail and not line.endswith("\n"):
                pending = (where, line, e)
                continue
            raise DataFileError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from e
        yield where, _as_object(item, where)


def read_jsonl(path: str | Path, tolerate_torn_tail: bool = False) -> list[Row]:
    """All rows of :func:`iter_jsonl` as a list of ``(where, row)``."""
    return list(iter_jsonl(path, tolerate_torn_tail))


def read_jsonl_rows(path: str | Path, tolerate_torn_tail: bool = False) -> list[dict]:
    """The rows alone (no ``where``), for artifacts this product wrote itself."""
    return [row for _, row in iter_jsonl(path, tolerate_torn_tail)]


def _atomic_write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic on POSIX: readers see the old file or the new one
    return path


def write_jsonl(rows: Iterable[dict], path: str | Path) -> Path:
    """Write ``rows`` as JSON lines, atomically; returns the path."""
    return _atomic_write_text(Path(path), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_json(obj: Any, path: str | Path, indent: int | None = 2) -> Path:
    """Write one JSON document atomically (non-JSON values as their ``str``)."""
    return _atomic_write_text(Path(path), json.dumps(obj, indent=indent, default=str))


def read_json(path: str | Path) -> Any:
    """One JSON document; a missing or unreadable file raises :class:`DataFileError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except json.JSONDecodeError as e:
        raise DataFileError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DataFileError(f"{path}: cannot read: {e}") from e


def content_hash(obj: Any, length: int = 16) -> str:
    """sha256 of ``obj`` as canonical JSON (sorted keys), the first ``length`` hex digits."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:length]


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file (caches and skip decisions key on content, never on existence)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def row_id(row: dict, index: int) -> str:
    """A data row's id: the first of ``ID_FIELDS`` it has, else its 0-based row number; always a string."""
    for key in ID_FIELDS:
        if row.get(key) is not None:
            return str(row[key])
    return str(index)
