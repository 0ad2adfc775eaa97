"""Repository-level CPT documents in Qwen2.5-Coder's format.

One document per repository (Hui et al. 2024, section 3.1.2; the format of Qwen2.5-Coder's
repo-level completion example)::

    <|repo_name|>{repo name}
    <|file_sep|>{file path}
    {file content}
    <|file_sep|>{file path}
    {file content}

A file block is ``<|file_sep|>{path}\\n{content}``; when a content does not end with a newline,
one is added before the next ``<|file_sep|>`` (so every separator starts a line), never after
the last file.

- **Order**: a file comes after the files it imports where that is cheap to read: Python
  ``import`` / ``from ... import`` statements (``ast``, relative imports resolved against the
  file's package; ``src/``-style layouts matched by module-path suffix). Otherwise, and to break
  import cycles, files keep their path order.
- **Last file in FIM form** (optional): the last kept file's content becomes
  ``<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}``
  (:func:`~domainspec.common.data.fim.fim_transform`), as in Qwen2.5-Coder's repo-level FIM;
  :func:`undo_repo_fim` gives the plain document back.
- **Token budget** (``max_tokens``): files are added in order while the document fits; the first
  file that would not fit and every file after it are left out, whole (no file is cut mid-way,
  and the files kept are the ones the later files import). A repository whose first file alone
  does not fit yields no document. A document chosen for FIM keeps :data:`FIM_RESERVE` tokens
  free; if its FIM form still exceeds the budget it stays plain. All are counted in
  :class:`RepoStats`. Token counts are exact: each block starts with a special token, which the tokenizer splits on first, so the document's
  tokens are the concatenation of its blocks' tokens.

Inputs: a folder of repositories (each sub-folder one repository) or rows with repo name /
file path / content, contiguous per repository (one repository in memory at a time).

Usage::

    for text in repo_documents(repos_from_folder("repos/"), tokenizer, max_tokens=32768, fim=FIMConfig(rate=0.5)):
        ...
"""
from __future__ import annotations

import ast
import heapq
import random
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, Mapping, Sequence

from domainspec.common.data.fim import FIM_PREFIX, fim_transform, undo_fim
from domainspec.common.data.sources import DataError

REPO_NAME, FILE_SEP = "<|repo_name|>", "<|file_sep|>"
# tokens kept free for the FIM form: 3 sentinels + 2 per cut point (text split mid-token re-tokenizes)
FIM_RESERVE = 7


@dataclass(frozen=True)
class RepoFile:
    path: str  # relative, "/"-separated
    content: str


@dataclass
class RepoStats:
    repos: int = 0
    documents: int = 0
    files_kept: int = 0
    files_cut: int = 0  # left out by the token budget
    repos_too_long: int = 0  # first file alone over the budget: no document
    fim_documents: int = 0
    fim_over_budget: int = 0  # FIM form over the budget despite the reserve: kept plain
    by_repo: dict[str, int] = field(default_factory=dict)  # files left out, per repository


# ------------------------------------------------------------------ inputs


def repos_from_folder(root: str | Path, extensions: Sequence[str] = (".py",)) -> Iterator[tuple[str, list[RepoFile]]]:
    """(name, files) for every sub-folder of ``root``, files with a suffix in ``extensions``, sorted by path."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"repo-level source {root}: no such folder")
    exts = {e if e.startswith(".") else "." + e for e in extensions}
    for repo in sorted(p for p in root.iterdir() if p.is_dir()):
        files = []
        for f in sorted(repo.rglob("*")):
            if not (f.is_file() and f.suffix in exts):
                continue
            try:
                text = f.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"repo-level source {root}: {f} is not UTF-8 text (byte {e.start}). Convert it, "
                                f"remove it, or narrow the extensions (now {sorted(exts)}).") from None
            except OSError as e:
                raise DataError(f"repo-level source {root}: cannot read {f}: {e.strerror or e}") from None
            files.append(RepoFile(f.relative_to(repo).as_posix(), text))
        if files:
            yield repo.name, files


def repos_from_rows(rows: Iterable[Mapping], repo_field: str = "repo_name", path_field: str = "path",
                    content_field: str = "content", where: str = "rows") -> Iterator[tuple[str, list[RepoFile]]]:
    """Group rows into repositories; a repository's rows must be contiguous (one in memory at a time)."""
    seen: set[str] = set()
    name, files = None, []
    for i, row in enumerate(rows):
        for key in (repo_field, path_field, content_field):
            if not isinstance(row.get(key), str):
                raise DataError(f"{where}: row {i + 1}: field {key!r} is missing or not text "
                                f"(fields present: {sorted(row)})")
        repo = row[repo_field]
        if repo != name:
            if name is not None:
                yield name, files
            if repo in seen:
                raise DataError(f"{where}: row {i + 1}: repository {repo!r} appeared before (rows are not grouped "
                                f"by repository); sort the rows by {repo_field!r}")
            seen.add(repo)
            name, files = repo, []
        files.append(RepoFile(row[path_field], row[content_field]))
    if name is not None:
        yield name, files


# ------------------------------------------------------------------ import order


def _module_names(path: str) -> list[str]:
    """Dotted names a Python file may be imported as: the full path and each suffix (src/ layouts)."""
    p = PurePosixPath(path)
    if p.suffix != ".py":
        return []
    parts = list(p.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return [".".join(parts[i:]) for i in range(len(parts)) if parts[i:]]


def python_imports(path: str, content: str) -> set[str]:
    """Absolute dotted names a Python file imports (relative imports resolved against its package).
    A file that does not parse imports nothing (its order is then its path order)."""
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return set()
    package = list(PurePosixPath(path).parent.parts)
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod:
                out.add(mod)
            out.update(f"{mod}.{a.name}" if mod else a.name for a in node.names)  # `from pkg import module`
    return out


def order_files(files: Sequence[RepoFile]) -> list[RepoFile]:
    """Files in path order, moved after the repository files they import (cycles broken by path order)."""
    files = sorted(files, key=lambda f: f.path)
    by_name: dict[str, set[int]] = {}
    for k, f in enumerate(files):
        for name in _module_names(f.path):
            by_name.setdefault(name, set()).add(k)
    deps: list[set[int]] = []
    for k, f in enumerate(files):
        d: set[int] = set()
        if f.path.endswith(".py"):
            for imp in python_imports(f.path, f.content):
                parts = imp.split(".")
                for j in range(len(parts), 0, -1):  # a.b.c imports a.b.c, else the package a.b (its __init__)
                    hit = by_name.get(".".join(parts[:j]))
                    if hit:
                        d |= hit
                        break
        d.discard(k)
        deps.append(d)
    users: list[list[int]] = [[] for _ in files]
    waiting = [len(d) for d in deps]
    for k, d in enumerate(deps):
        for j in d:
            users[j].append(k)
    ready = [k for k in range(len(files)) if waiting[k] == 0]
    heapq.heapify(ready)
    done = [False] * len(files)
    out: list[int] = []
    while len(out) < len(files):
        if not ready:  # an import cycle: release the first remaining file by path
            heapq.heappush(ready, next(k for k in range(len(files)) if not done[k]))
        k = heapq.heappop(ready)
        if done[k]:
            continue
        done[k] = True
        out.append(k)
        for u in users[k]:
            waiting[u] -= 1
            if waiting[u] == 0 and not done[u]:
                heapq.heappush(ready, u)
    return [files[k] for k in out]


# ------------------------------------------------------------------ documents


def render_repo(name: str, files: Sequence[RepoFile]) -> str:
    """The repository document of ``files`` in the given order (see module docstring)."""
    return "".join(_blocks(name, files))


def _blocks(name: str, files: Sequence[RepoFile]) -> list[str]:
    blocks = [f"{REPO_NAME}{name}\n"]
    for i, f in enumerate(files):
        sep = "\n" if i < len(files) - 1 and not f.content.endswith("\n") else ""
        blocks.append(f"{FILE_SEP}{f.path}\n{f.content}{sep}")
    return blocks


def repo_document(name: str, files: Sequence[RepoFile], tokenizer=None, max_tokens: int | None = None,
                  fim=None, rng: random.Random | None = None, stats: RepoStats | None = None) -> str | None:
    """One repository's document: import order, token budget, optional FIM on the last kept file.
    None when its first file alone exceeds ``max_tokens``."""
    stats = stats if stats is not None else RepoStats()
    stats.repos += 1
    ordered = order_files(files)
    use_fim = fim is not None and fim.rate > 0 and rng is not None and rng.random() < fim.rate
    kept = ordered
    if max_tokens is not None:
        if tokenizer is None:
            raise ValueError("repo_document: max_tokens needs a tokenizer to count tokens")
        reserve = FIM_RESERVE if use_fim else 0
        used = _count(tokenizer, f"{REPO_NAME}{name}\n") + reserve
        n, prev_last, prev_mid = 0, 0, 0
        for f in ordered:
            block = f"{FILE_SEP}{f.path}\n{f.content}"
            last = _count(tokenizer, block)  # as the last kept file
            # exact: the previous block gains its separator newline once this one follows it
            total = used - prev_last + prev_mid + last
            if total > max_tokens:
                break
            used, prev_last = total, last
            prev_mid = last if f.content.endswith("\n") else _count(tokenizer, block + "\n")
            n += 1
        kept = ordered[:n]
        if len(kept) < len(ordered):
            stats.files_cut += len(ordered) - len(kept)
            stats.by_repo[name] = len(ordered) - len(kept)
        if not kept:
            stats.repos_too_long += 1
            return None
    stats.files_kept += len(kept)
    stats.documents += 1
    if use_fim:
        mode = fim.mode if fim.mode != "mixed" else ("spm" if rng.random() < fim.spm_rate else "psm")
        last = kept[-1]
        new = fim_transform(last.content, rng, mode)
        if new is not last.content:
            fimmed = render_repo(name, list(kept[:-1]) + [RepoFile(last.path, new)])
            if max_tokens is None or _count(tokenizer, fimmed) <= max_tokens:
                stats.fim_documents += 1
                return fimmed
            stats.fim_over_budget += 1  # rare: the cuts re-tokenized past the reserve; stays plain
    return render_repo(name, kept)


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False, return_attention_mask=False)["input_ids"])


def undo_repo_fim(text: str) -> str:
    """The plain repository document of one whose last file is in FIM form (others unchanged)."""
    head, sep, last = text.rpartition(FILE_SEP)
    if not sep or FIM_PREFIX not in last:
        return text
    path, nl, content = last.partition("\n")
    return f"{head}{FILE_SEP}{path}{nl}{undo_fim(content)}"


def repo_documents(repos: Iterable[tuple[str, Sequence[RepoFile]]], tokenizer=None, max_tokens: int | None = None,
                   fim=None, seed: int = 0, stats: RepoStats | None = None) -> Iterator[str]:
    """Documents of ``repos`` (``(name, files)`` pairs); the FIM choice of a repo depends on (seed, name)."""
    for name, files in repos:
        doc = repo_document(name, files, tokenizer, max_tokens, fim, random.Random(f"repo-fim:{seed}:{name}"), stats)
        if doc is not None:
            yield doc

