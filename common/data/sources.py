"""Where training text comes from: one :class:`DataSourceConfig` per source.

A source's ``path`` is one of

- a local file: ``.jsonl``/``.json`` (datasets' ``json`` builder), ``.parquet``,
  ``.csv``, ``.txt``/``.md`` (``text`` builder), any other file = one document;
- a local folder: every file under it whose suffix is in ``extensions`` is one
  document (a folder of source files);
- ``builtin:stdlib_code`` / ``builtin:stdlib_docs`` / ``builtin:math_corpus``:
  corpora that exist on every machine (see ``corpora.py``, ``math_problems.py``);
- anything else (``org/name``, or ``hf:name`` to force it): a Hugging Face hub
  dataset through ``datasets.load_dataset(name, config_name, split=...)``.

Usage::

    src = DataSourceConfig(path="data/code.jsonl", text_field="content")
    for text in load_documents(src): ...
    ds = load_text_dataset(src)      # a datasets (Iterable)Dataset with one "text" column

``streaming: true`` gives an ``IterableDataset`` read lazily (corpora larger than
memory). Errors name the source and, for bad rows, the file and row number.
Not here: tokenization (``tokenization.py``), mixing (``mixing.py``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Literal

from pydantic import Field

from domainspec.common.config import Config, ConfigError

BUILTINS = ("stdlib_code", "stdlib_docs", "math_corpus")
_BUILDERS = {".jsonl": "json", ".json": "json", ".gz": "json", ".parquet": "parquet", ".csv": "csv",
             ".txt": "text", ".md": "text"}
DEFAULT_MATH_CORPUS_SIZE = 2000


class DataError(ConfigError):
    """Unusable training data; the message names the source, file and row."""


class DataSourceConfig(Config):
    path: str = Field(description="Local file or folder, hub dataset name ('hf:' prefix optional), or "
                                  "builtin:stdlib_code | builtin:stdlib_docs | builtin:math_corpus.")
    name: str | None = Field(None, description="Label in mix reports and caches; default: derived from path.")
    weight: float = Field(1.0, gt=0, description="Relative share of this source in a mix (see mixing.py).")
    domain: Literal["code", "text", "math"] | None = Field(
        None, description="What the source holds (FIM applies to code); default inferred from the path.")
    text_field: str = Field("text", description="Column/key holding the document text (files and hub datasets).")
    split: str = Field("train", description="Split to read (hub datasets and local data files).")
    config_name: str | None = Field(None, description="Hub dataset configuration name.")
    streaming: bool = Field(False, description="Read lazily as an IterableDataset (corpora larger than memory).")
    limit: int | None = Field(None, ge=1, description="Use at most this many documents (math_corpus: how many "
                                                       f"to generate, default {DEFAULT_MATH_CORPUS_SIZE}).")
    seed: int = Field(0, description="Shuffle seed of builtin corpora (file order, generated problems).")
    extensions: list[str] = Field([".py"], description="File suffixes read from a folder source.")
    sample_by: Literal["document", "paragraph", "line"] = Field(
        "document", description="How a .txt/.md file is split into documents.")
    repo_level: bool = Field(False, description="One Qwen2.5-Coder repo-level document per repository "
                             "(repo_level.py): a folder of repository folders, or rows holding repo_field, "
                             "path_field and text_field (the file content), contiguous per repository.")
    repo_field: str = Field("repo_name", description="repo_level rows: the column naming the repository.")
    path_field: str = Field("path", description="repo_level rows: the column holding the file path.")
    repo_max_tokens: int | None = Field(None, ge=1, description="repo_level: token budget of one repository "
                                        "document; files past it are left out whole (see repo_level.py).")

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.path.startswith("builtin:"):
            return self.path.split(":", 1)[1]
        return Path(self.path.removeprefix("hf:")).stem or self.path


def source_kind(src: DataSourceConfig) -> str:
    """'builtin' | 'file' | 'folder' | 'hub'; raises DataError for a missing local path."""
    p = src.path
    if p.startswith("builtin:"):
        if p.split(":", 1)[1] not in BUILTINS:
            raise DataError(f"data source {p!r}: unknown builtin; choose from {['builtin:' + b for b in BUILTINS]}")
        return "builtin"
    if p.startswith("hf:"):
        return "hub"
    path = Path(p).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    # "org/name" without a suffix is a hub name; anything that looks like a path is a missing file
    looks_local = p.startswith((".", "/", "~")) or bool(path.suffix) or p.count("/") > 1
    if looks_local:
        raise DataError(f"data source {p!r}: no such file or folder (resolved to {path.resolve()})")
    return "hub"


def check_source(src: DataSourceConfig) -> None:
    """Cheap checks to run before training starts (path exists, builtin known)."""
    kind = source_kind(src)
    if kind == "folder" and not any(folder_files(src)):
        raise DataError(f"data source {src.path!r}: folder has no files with suffix {src.extensions}")


# ------------------------------------------------------------------ loaders


def folder_files(src: DataSourceConfig) -> Iterator[Path]:
    """The files a folder source reads, in sorted order."""
    exts = {e if e.startswith(".") else "." + e for e in src.extensions}
    for f in sorted(Path(src.path).expanduser().rglob("*")):
        if f.is_file() and f.suffix in exts:
            yield f


def _folder_docs(src: DataSourceConfig) -> Iterator[dict]:
    for f in folder_files(src):
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:  # never skipped silently: the user decides what the corpus holds
            raise DataError(f"data source {src.path!r}: {f} is not UTF-8 text (byte {e.start}: {e.reason}). Convert "
                            f"it to UTF-8, remove it from the folder, or narrow the source's extensions "
                            f"(now {src.extensions}).") from None
        except OSError as e:
            raise DataError(f"data source {src.path!r}: cannot read {f}: {e.strerror or e}. Fix its permissions, "
                            f"remove it, or narrow the source's extensions (now {src.extensions}).") from None
        yield {"text": text}


def _builtin_docs(name: str, limit: int | None, seed: int) -> Iterator[dict]:
    if name == "math_corpus":
        from domainspec.common.data.builtin.math_problems import math_corpus_documents
        docs: Any = math_corpus_documents(limit or DEFAULT_MATH_CORPUS_SIZE, seed)
    elif name == "stdlib_code":
        from domainspec.common.data.builtin.corpora import stdlib_code_documents
        docs = stdlib_code_documents(limit, seed)
    else:
        from domainspec.common.data.builtin.corpora import stdlib_docs_documents
        docs = stdlib_docs_documents(limit, seed)
    for d in docs:
        yield {"text": d}


def _from_generator(gen, kwargs: dict, streaming: bool):
    import datasets

    if streaming:
        return datasets.IterableDataset.from_generator(gen, gen_kwargs=kwargs)
    return datasets.Dataset.from_list(list(gen(**kwargs)))


def _first_bad_json_line(path: Path) -> str:
    from domainspec.common.artifacts import DataFileError, iter_jsonl

    try:
        for _ in iter_jsonl(path):
            pass
    except DataFileError as e:
        return str(e)
    return f"{path}: could not be read as JSON lines"


def _load_file(src: DataSourceConfig, path: Path):
    import datasets

    builder = _BUILDERS.get(path.suffix.lower())
    if builder is None:  # any other file (e.g. one .py file) is a single document
        return _from_generator(_single_file, {"path": str(path)}, src.streaming)
    kwargs: dict[str, Any] = {"sample_by": src.sample_by} if builder == "text" else {}
    if path.stat().st_size == 0:
        raise DataError(f"data source {src.path!r}: empty corpus ({path} is an empty file)")
    try:
        return datasets.load_dataset(builder, data_files={src.split: str(path)}, split=src.split,
                                     streaming=src.streaming, **kwargs)
    except Exception as e:  # datasets wraps parse errors in generic exceptions
        if builder == "json":
            raise DataError(f"data source {src.path!r}: {_first_bad_json_line(path)}") from e
        raise DataError(f"data source {src.path!r}: could not read {path} with datasets' {builder!r} builder: "
                        f"{type(e).__name__}: {e}") from e


def _single_file(path: str) -> Iterator[dict]:
    yield {"text": Path(path).read_text(encoding="utf-8")}


def _load_raw(src: DataSourceConfig):
    """The source as a datasets (Iterable)Dataset, columns as stored."""
    kind = source_kind(src)
    if kind == "builtin":
        name = src.path.split(":", 1)[1]
        return _from_generator(_builtin_docs, {"name": name, "limit": src.limit, "seed": src.seed}, src.streaming)
    if kind == "folder":
        check_source(src)
        return _from_generator(_folder_docs, {"src": src}, src.streaming)
    if kind == "file":
        return _load_file(src, Path(src.path).expanduser())
    import datasets

    name = src.path.removeprefix("hf:")
    try:
        return datasets.load_dataset(name, src.config_name, split=src.split, streaming=src.streaming)
    except Exception as e:
        raise DataError(f"data source {src.path!r}: datasets.load_dataset({name!r}) failed: {type(e).__name__}: "
                        f"{e} (offline? set HF_DATASETS_OFFLINE=1 with a filled cache, or give a local path)") from e


def _where(src: DataSourceConfig) -> str:
    return src.path


def _bad_row(src: DataSourceConfig, row: int, value: Any, fields: list[str] | None) -> DataError:
    what = "is missing" if value is None else f"is a {type(value).__name__}, not text"
    avail = f"; fields present: {fields}" if fields else ""
    return DataError(f"{_where(src)}: row {row + 1}: field {src.text_field!r} {what}{avail}")


def _check_columns(src: DataSourceConfig, ds) -> None:
    cols = ds.column_names
    if cols is not None and src.text_field not in cols:
        raise DataError(f"{_where(src)}: no field {src.text_field!r} in any row (fields present: {cols}); "
                        f"set text_field to the column holding the text")


def load_text_dataset(src: DataSourceConfig):
    """The source as a datasets ``Dataset`` (or ``IterableDataset`` when streaming) with one column, "text".

    Every row is checked: a null or non-text value is a :class:`DataError` naming the row;
    an empty result is an "empty corpus" error. Rows whose text is blank are dropped.
    """
    ds = _load_raw(src)
    _check_columns(src, ds)
    if src.streaming:
        return _checked_stream(src, ds)
    import pyarrow.compute as pc

    col = ds.data.column(src.text_field)
    nulls = pc.is_null(col)
    if pc.any(nulls).as_py():
        i = pc.index(nulls, True).as_py()
        raise _bad_row(src, i, None, ds.column_names)
    import pyarrow as pa

    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise _bad_row(src, 0, ds[0][src.text_field], ds.column_names)
    extra = [c for c in ds.column_names if c != src.text_field]
    if extra:
        ds = ds.remove_columns(extra)
    if src.text_field != "text":
        ds = ds.rename_column(src.text_field, "text")
    ds = ds.filter(lambda t: [bool(x.strip()) for x in t], input_columns="text", batched=True)
    if src.limit is not None and len(ds) > src.limit:
        ds = ds.select(range(src.limit))
    if len(ds) == 0:
        raise DataError(f"{_where(src)}: empty corpus (no non-blank documents)")
    return ds


def _checked_stream(src: DataSourceConfig, ds):
    import datasets

    def rows():
        try:
            yield from ds
        except DataError:
            raise
        except Exception as e:  # a parse error surfaces only when the lazy reader reaches it
            path = Path(src.path).expanduser()
            if path.is_file() and _BUILDERS.get(path.suffix.lower()) == "json":
                raise DataError(f"data source {src.path!r}: {_first_bad_json_line(path)}") from e
            raise DataError(f"data source {src.path!r}: reading failed: {type(e).__name__}: {e}") from e

    def gen():
        n = 0
        for i, row in enumerate(rows()):
            v = row.get(src.text_field)
            if not isinstance(v, str):
                raise _bad_row(src, i, v, list(row))
            if v.strip():
                yield {"text": v}
                n += 1
                if src.limit is not None and n >= src.limit:
                    return
        if n == 0:
            raise DataError(f"{_where(src)}: empty corpus (no non-blank documents)")

    return datasets.IterableDataset.from_generator(gen)


def load_repos(src: DataSourceConfig) -> Iterator[tuple[str, list]]:
    """A ``repo_level`` source's repositories as ``(name, [RepoFile])``, one at a time."""
    from domainspec.common.data.repo_level import repos_from_folder, repos_from_rows

    kind = source_kind(src)
    if kind == "folder":
        yield from repos_from_folder(src.path, src.extensions)
        return
    if kind == "builtin":
        raise DataError(f"data source {src.path!r}: repo_level needs a folder of repositories or rows with "
                        f"{src.repo_field!r}/{src.path_field!r}/{src.text_field!r}")
    ds = _load_raw(src.model_copy(update={"streaming": True}))
    yield from repos_from_rows(iter(ds), src.repo_field, src.path_field, src.text_field, where=src.path)


def load_documents(src: DataSourceConfig) -> Iterator[str]:
    """The source's documents as strings (lazily when ``streaming``); see :func:`load_text_dataset`."""
    ds = load_text_dataset(src)
    if src.streaming:
        for row in ds:
            yield row["text"]
    else:
        for batch in ds.iter(batch_size=1000):
            yield from batch["text"]
