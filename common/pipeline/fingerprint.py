"""A planned stage's hash: what its done marker keys on (``markers``), computed by the planner.

The hash covers the stage type, its resolved config, the content of the local files and folders
its config names (data, base models) and the hashes of its upstream stages, so a changed input
anywhere upstream re-runs the stage (STYLE.md #8: content, never "a file exists").
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from domainspec.common.artifacts import content_hash, file_sha256


def stage_hash(type_name: str, config: dict, external: dict[str, str], upstream: dict[str, str]) -> str:
    """sha256 (64 hex digits) of the stage's type, resolved config, external inputs' digests and upstream hashes."""
    return content_hash({"type": type_name, "config": config, "external": external, "upstream": upstream}, length=64)


def path_digest(path: Path, big: int = 64 << 20) -> str:
    """Content hash of a file or folder; files over ``big`` bytes are keyed by size and mtime."""
    def one(p: Path) -> str:
        st = p.stat()
        if st.st_size > big:
            return f"size:{st.st_size}:mtime:{st.st_mtime_ns}"
        return file_sha256(p)
    if path.is_file():
        return one(path)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            p = Path(root) / f
            h.update(f"{p.relative_to(path)}\0{one(p)}\n".encode())
    return h.hexdigest()


def external_inputs(config: Any, workdir: Path) -> dict[str, str]:
    """``{path as written: digest}`` of the existing local files/folders a config names outside ``workdir``."""
    out: dict[str, str] = {}
    _collect(config, workdir, out)
    return out


def _collect(node: Any, workdir: Path, out: dict[str, str]) -> None:
    if isinstance(node, str):
        if len(node) < 1024 and ("/" in node or node.endswith((".jsonl", ".json", ".parquet", ".txt", ".gguf"))):
            p = Path(node).expanduser()
            try:
                exists = p.exists()
            except OSError:
                exists = False
            if exists and workdir.resolve() not in p.resolve().parents:
                out[node] = path_digest(p)
    elif isinstance(node, dict):
        for v in node.values():
            _collect(v, workdir, out)
    elif isinstance(node, list):
        for v in node:
            _collect(v, workdir, out)
