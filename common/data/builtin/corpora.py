"""Built-in corpora that exist on every machine with no download.

- ``stdlib_code_documents``: the Python standard library's own ``.py`` files, a real
  code corpus (the default "code" share of the CPT mix).
- ``stdlib_docs_documents``: the docstrings of those files, English prose about code
  (the default "text" share).
- the math corpus lives in :mod:`domainspec.common.data.builtin.math_problems`.

Files are listed in sorted order, then shuffled with ``seed``, so a corpus is the
same on every machine with the same Python version. Not here: third-party
packages (``site-packages``) and the stdlib's own test suite (``test/``, large and
full of deliberately odd files).
"""
from __future__ import annotations

import ast
import os
import random
import sysconfig
from pathlib import Path
from typing import Iterator

# Sub-trees left out: the stdlib test suite, bundled third-party code, and GUI/
# demo folders that add bulk but little typical code.
_EXCLUDE_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "turtledemo", "__pycache__",
                 "lib2to3", "ensurepip"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_code_files(limit: int | None = None, seed: int = 0) -> list[Path]:
    """Paths of the stdlib's ``.py`` files (shuffled with ``seed``, first ``limit``)."""
    root = stdlib_dir()
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        # prune in place: never descend into site-packages (often far larger than the stdlib)
        dirnames[:] = [d for d in dirnames if d not in _EXCLUDE_DIRS and not d.startswith("config-")]
        files.extend(Path(dirpath) / f for f in filenames if f.endswith(".py"))
    files.sort()
    random.Random(seed).shuffle(files)
    return files[:limit] if limit is not None else files


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # a handful of stdlib files are latin-1 test fixtures; skip rather than guess
    return text if text.strip() else None


def stdlib_code_documents(limit: int | None = None, seed: int = 0) -> list[str]:
    """Source texts of up to ``limit`` stdlib modules (empty files skipped)."""
    docs: list[str] = []
    for p in stdlib_code_files(None, seed):
        text = _read(p)
        if text is not None:
            docs.append(text)
            if limit is not None and len(docs) >= limit:
                break
    return docs


def _docstrings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc and len(doc.split()) >= 8:  # skip one-liners such as "Return self."
                yield doc


def stdlib_docs_documents(limit: int | None = None, seed: int = 0) -> list[str]:
    """One document per stdlib module: its docstrings joined by blank lines."""
    docs: list[str] = []
    for p in stdlib_code_files(None, seed):
        text = _read(p)
        if text is None:
            continue
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        parts = list(_docstrings(tree))
        if parts:
            docs.append("\n\n".join(parts) + "\n")
            if limit is not None and len(docs) >= limit:
                break
    return docs
