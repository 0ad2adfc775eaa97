"""Prepare CPT data once: stream -> mix -> decontaminate -> FIM -> tokenize (workers) -> pack -> shards.

The same steps, in the same order and with the same seeds, as the in-memory path
(:func:`~domainspec.common.recipes.cpt_data.build_cpt_examples`), so both yield the same
sequences; here every stage streams and the output goes to memory-mapped shards
(:mod:`~domainspec.common.data.shards`). Memory is bounded by the decontamination index,
``2 x workers`` batches in flight and one shard's boundary index, whatever the corpus size.

The main process reads and mixes the sources (lazily, ``streaming``), hands batches of
documents to ``workers`` processes that decontaminate, FIM-rewrite (code) and tokenize
them, and packs and writes the results in order, so the output does not depend on the
number of workers.

A preparation lives in ``<dir>/<key>/`` where ``key`` is the content hash of everything that
decides the output: the sources' bytes (files and folders; builtins by name, seed and Python
version; hub datasets by name), the mix/FIM/decontamination settings and the benchmark texts,
``seq_len``, the seed and the tokenizer. The same inputs find the folder and reuse it;
any change gives a new key and a new preparation. ``manifest.json`` records the key and its
inputs, tokens and documents per source and domain, packing efficiency, decontamination and
FIM counts, the shard list, and its own sha256 (``manifest_sha256``), checked on every read.

Usage::

    folder, manifest = prepare(sources, tokenizer, PrepareConfig(dir="/shared/cpt_data"), seq_len=8192,
                               fim=fim_cfg, decontam=decontam_cfg, seed=0)
    ds = ShardDataset(folder)    # what training reads
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from pydantic import Field

from domainspec.common.artifacts import content_hash, read_json, write_json
from domainspec.common.config import Config
from domainspec.common.data.shards import MANIFEST, ShardError, ShardWriter, token_dtype
from domainspec.common.data.sources import DataError, DataSourceConfig, check_source, folder_files, load_documents

log = logging.getLogger(__name__)

PREPARE_VERSION = 1


class PrepareConfig(Config):
    dir: str | None = Field(None, description="Root folder of prepared CPT data; each preparation is a subfolder "
                            "named by its content key, so configs can share one root. On a cluster: a shared "
                            "filesystem path every node sees. Default: <output folder>/data.")
    workers: int = Field(default_factory=lambda: min(8, os.cpu_count() or 1), ge=0,
                         description="Processes that decontaminate, FIM-rewrite and tokenize (0 = in the main "
                         "process). Default: min(8, CPU count).")
    batch_documents: int = Field(256, ge=1, description="Documents per worker task.")
    shard_tokens: int = Field(2**27, ge=1, description="Tokens per shard file (2^27 = 256 MiB at 2 bytes/token); "
                              "rounded down to whole sequences.")


# ------------------------------------------------------------------ content key


def source_content_hash(src: DataSourceConfig) -> str:
    """sha256 of what a source reads: file bytes, a folder's matching files (path + bytes), else its identity."""
    from domainspec.common.data.sources import source_kind

    kind = source_kind(src)
    h = hashlib.sha256(kind.encode())
    if kind == "builtin":  # generated from code and the stdlib: the Python version decides the bytes
        h.update(f"{src.path}:{sys.version}".encode())
    elif kind == "hub":  # no content without downloading it; the name is the identity
        h.update(f"{src.path}:{src.config_name}:{src.split}".encode())
    else:
        root = Path(src.path).expanduser()
        files = list(folder_files(src)) if kind == "folder" else [root]
        for f in files:
            h.update(str(f.relative_to(root) if kind == "folder" else f.name).encode() + b"\0")
            try:
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as e:
                raise DataError(f"data source {src.path!r}: cannot read {f}: {e.strerror or e}. Fix its permissions, "
                                f"remove it, or narrow the source's extensions.") from e
    return h.hexdigest()


def _benchmark_texts(decontam) -> list[tuple[str, str, str]]:
    from domainspec.common.data.decontam import provided_texts

    return list(provided_texts(decontam))


def prepare_inputs(sources: Sequence[DataSourceConfig], tokenizer, seq_len: int, fim=None, decontam=None,
                   seed: int = 0, max_documents: int | None = None, on_exhausted: str = "drop",
                   shard_tokens: int = 2**27, benchmark_texts=None) -> dict[str, Any]:
    """Everything that decides a preparation's output, as JSON (its content hash is the key)."""
    from domainspec.common.data.tokenization import texts_fingerprint, tokenizer_fingerprint

    fim_on = fim is not None and fim.rate > 0
    dec_on = decontam is not None and decontam.enabled
    dec = None
    if dec_on:
        texts = benchmark_texts if benchmark_texts is not None else _benchmark_texts(decontam)
        dec = {**decontam.to_dict(), "texts": texts_fingerprint(f"{b}\0{i}\0{t}" for b, i, t in texts)}
    return {"format": PREPARE_VERSION, "seq_len": seq_len, "seed": seed, "max_documents": max_documents,
            "on_exhausted": on_exhausted, "shard_sequences": max(1, shard_tokens // seq_len),
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "sources": [{**{k: v for k, v in s.to_dict().items() if k != "streaming"},
                         "content": source_content_hash(s)} for s in sources],
            "fim": fim.to_dict() if fim_on else None, "decontam": dec}


# ------------------------------------------------------------------ manifest


def _manifest_digest(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of a prepared folder; a missing, unreadable or edited manifest raises naming it."""
    from domainspec.common.artifacts import DataFileError

    path = Path(folder) / MANIFEST
    try:
        manifest = read_json(path)
    except DataFileError as e:
        raise ShardError(f"{e}. Prepare the data (domainspec cpt prepare --config F) or point prepare.dir at a "
                         f"prepared root.") from None
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise ShardError(f"{path}: the manifest's hash does not match its contents (edited, or copied from another "
                         f"preparation). Delete {Path(folder)} and prepare again (domainspec cpt prepare --config F).")
    if manifest.get("format") != PREPARE_VERSION:
        raise ShardError(f"{path}: prepared with format {manifest.get('format')}, this version reads "
                         f"{PREPARE_VERSION}. Prepare again (domainspec cpt prepare --config F).")
    return manifest


# ------------------------------------------------------------------ workers

_W: dict[str, Any] = {}  # per-process worker state (set by _init)


def _init(tokenizer, index, bench_texts, n, fim, seed) -> None:
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already
    if index is None and bench_texts is not None:  # spawned: str hashes differ per process, rebuild
        from domainspec.common.data.decontam import BenchmarkIndex
        index = BenchmarkIndex.from_texts(bench_texts, n)
    _W.update(tokenizer=tokenizer, index=index, fim=fim, seed=seed)


def _process(batch: list[tuple[str, Any, str]]):
    """Decontaminate, FIM (code), tokenize one batch of (doc_id, payload, kind); results in input order:
    ``("drop", benchmark, task id, ngram)``, ``("ok", fim applied, token array, files cut)`` or
    ``("too_long", files cut)``. kind "repo": payload (name, files, max_tokens) becomes one repo-level
    document (repo_level.py; its FIM rewrites the last file) before the same steps."""
    import numpy as np

    from domainspec.common.data.fim import apply_fim

    index, fim, seed, tok = _W["index"], _W["fim"], _W["seed"], _W["tokenizer"]
    out: list = [None] * len(batch)
    texts, where = [], []
    for j, (doc_id, payload, kind) in enumerate(batch):
        rng = random.Random(f"fim:{seed}:{doc_id}")
        cut, fimmed = 0, False
        if kind == "repo":
            from domainspec.common.data.repo_level import RepoStats, repo_document, undo_repo_fim
            name, files, budget = payload
            st = RepoStats()
            text = repo_document(name, files, tok, budget, fim, rng, st)
            cut = st.files_cut
            if text is None:
                out[j] = ("too_long", cut)
                continue
            fimmed, plain = st.fim_documents > 0, undo_repo_fim(text) if st.fim_documents else text
        else:
            text = plain = payload
        m = index.find(plain) if index is not None else None  # on the original text (see cpt_data.py)
        if m is not None:
            out[j] = ("drop", m.benchmark, m.task_id, m.ngram)
            continue
        if fim is not None and kind == "code":
            new = apply_fim(text, fim, rng)
            fimmed, text = new is not text, new
        texts.append(text)
        where.append((j, fimmed, cut))
    if texts:
        enc = tok(texts, add_special_tokens=False, return_attention_mask=False)["input_ids"]
        for (j, fimmed, cut), ids in zip(where, enc):
            out[j] = ("ok", fimmed, np.asarray(ids, dtype=np.uint32), cut)
    return out


def _batches(items: Iterable, size: int, max_chars: int = 1 << 20) -> Iterator[list]:
    """Batches of ``size`` items or ~``max_chars`` characters of text, whichever comes first."""
    batch, chars = [], 0
    for it in items:
        batch.append(it)
        chars += _length(it[2])
        if len(batch) == size or chars >= max_chars:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _ordered_map(batches: Iterator[list], workers: int, initargs: tuple) -> Iterator[tuple[list, list]]:
    """([(doc_id, source)], results) per batch in input order, at most 2 x workers batches in flight
    (bounded memory)."""
    if workers == 0:
        _init(*initargs)
        for b in batches:
            yield [(d, n) for d, n, _, _ in b], _process([(d, t, k) for d, _, t, k in b])
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    if method == "spawn":  # the index cannot be shared: workers rebuild it from the texts
        initargs = (initargs[0], None) + initargs[2:]
    else:
        initargs = (initargs[0], initargs[1], None) + initargs[3:]
    pending: deque = deque()
    with mp.get_context(method).Pool(workers, initializer=_init, initargs=initargs) as pool:
        for b in batches:
            # keep only the ids here: the texts live in the task until a worker has tokenized them
            task = pool.apply_async(_process, ([(d, t, k) for d, _, t, k in b],))
            pending.append(([(d, n) for d, n, _, _ in b], task))
            if len(pending) >= 2 * workers:
                b0, r = pending.popleft()
                yield b0, r.get()
        while pending:
            b0, r = pending.popleft()
            yield b0, r.get()


# ------------------------------------------------------------------ prepare


def _stream(src: DataSourceConfig) -> Iterator:
    from domainspec.common.data.sources import load_repos
    if src.repo_level:
        return ((name, files, src.repo_max_tokens) for name, files in load_repos(src))
    return load_documents(src.model_copy(update={"streaming": True}))


def _length(doc) -> int:
    """A document's size for the mix shares: characters (a repository: of all its files)."""
    return len(doc) if isinstance(doc, str) else sum(len(f.content) for f in doc[1])


def prepared_folder(root: str | Path, inputs: dict[str, Any]) -> Path:
    return Path(root) / content_hash(inputs, 24)


def prepare(sources: Sequence[DataSourceConfig], tokenizer, cfg: PrepareConfig, root: str | Path, seq_len: int,
            fim=None, decontam=None, seed: int = 0, max_documents: int | None = None,
            on_exhausted: str = "drop") -> tuple[Path, dict[str, Any]]:
    """Prepare (or find already prepared) shards under ``root``; returns (folder, manifest)."""
    from domainspec.common.data.mixing import Mixer
    from domainspec.common.data.packing import StreamPacker
    from domainspec.common.recipes.cpt_data import source_domain

    if not sources:
        raise DataError("prepare: no data sources")
    for s in sources:
        check_source(s)
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise DataError(f"prepare: source labels must be unique, got {labels}; set name: per source")
    dec_on = decontam is not None and decontam.enabled
    bench = _benchmark_texts(decontam) if dec_on else None
    inputs = prepare_inputs(sources, tokenizer, seq_len, fim, decontam, seed, max_documents, on_exhausted,
                            cfg.shard_tokens, bench)
    folder = prepared_folder(root, inputs)
    if (folder / MANIFEST).exists():
        manifest = read_manifest(folder)
        if manifest["key"] != folder.name:
            raise ShardError(f"{folder / MANIFEST}: records key {manifest['key']} but sits in folder {folder.name} "
                             f"(copied from another preparation). Delete {folder} and prepare again.")
        log.info("CPT data: reusing %s (%d sequences, %d tokens)", folder, manifest["sequences"], manifest["tokens"])
        return folder, manifest
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("prepare: the tokenizer has no eos_token_id to join documents with")
    t0 = time.perf_counter()
    index = None
    if dec_on:
        from domainspec.common.data.decontam import BenchmarkIndex
        index = BenchmarkIndex.from_texts(bench, decontam.n)
    domains = {s.label: source_domain(s) for s in sources}
    streams = {s.label: (lambda s=s: _stream(s)) for s in sources}
    kinds = {s.label: "repo" if s.repo_level else domains[s.label] for s in sources}
    mixer = Mixer(streams, {s.label: s.weight for s in sources}, seed=seed, on_exhausted=on_exhausted,
                  limit=max_documents, length=_length)
    fim_cfg = fim if fim is not None and fim.rate > 0 else None
    docs = ((f"{name}:{i}", name, doc, kinds[name]) for i, (name, doc) in enumerate(mixer))

    tmp = Path(root) / f"tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    vocab = len(tokenizer)
    writer = ShardWriter(tmp, seq_len, token_dtype(vocab), {"tokenizer": inputs["tokenizer"], "key": folder.name},
                         inputs["shard_sequences"])
    packer = StreamPacker(seq_len, eos, tokenizer.pad_token_id)
    per_source = {s.label: {"path": s.path, "domain": domains[s.label], "documents": 0, "tokens": 0,
                            "dropped": 0, "fim_documents": 0} for s in sources}
    for s in sources:
        if s.repo_level:
            per_source[s.label].update(repos_too_long=0, files_cut=0)
    by_bench: dict[str, int] = {}
    n_docs = n_dropped = segments = 0
    dropped_f = open(tmp / "dropped.jsonl", "w", encoding="utf-8") if dec_on else None
    try:
        initargs = (tokenizer, index, bench, decontam.n if dec_on else 10, fim_cfg, seed)
        for batch, results in _ordered_map(_batches(docs, cfg.batch_documents), cfg.workers, initargs):
            for (doc_id, name), res in zip(batch, results):
                stats = per_source[name]
                if res[0] == "too_long":  # a repository whose first file alone is over its budget
                    stats["repos_too_long"] += 1
                    stats["files_cut"] += res[1]
                    continue
                if res[0] == "drop":  # dropped by decontamination
                    res = res[1:]
                    stats["dropped"] += 1
                    by_bench[res[0]] = by_bench.get(res[0], 0) + 1
                    n_dropped += 1
                    dropped_f.write(json.dumps({"doc_id": doc_id, "benchmark": res[0], "task_id": res[1],
                                                "ngram": res[2]}) + "\n")
                    continue
                _, fimmed, ids, cut = res
                if cut:
                    stats["files_cut"] += cut
                stats["documents"] += 1
                stats["tokens"] += len(ids) + 1  # + EOS
                stats["fim_documents"] += int(fimmed)
                n_docs += 1
                for row, lens in packer.add(ids):
                    segments += len(lens)
                    writer.add(row, lens)
        last = packer.finish()
        num_pad = 0
        if last is not None:
            row, lens, num_pad = last
            segments += len(lens) - (1 if num_pad else 0)
            writer.add(row, lens)
        shards = writer.finish(num_pad)
        if dropped_f is not None:
            dropped_f.close()
        if not shards:
            raise DataError(f"data: the corpus is empty after loading, mixing and decontamination "
                            f"(sources: {', '.join(s.path for s in sources)})")
        n_seq = sum(s["sequences"] for s in shards)
        total = n_seq * seq_len
        dom: dict[str, dict[str, int]] = {}
        for st in per_source.values():
            d = dom.setdefault(st["domain"], {"documents": 0, "tokens": 0})
            d["documents"] += st["documents"]
            d["tokens"] += st["tokens"]
        kept = sum(st["documents"] for st in per_source.values())
        manifest = {
            "format": PREPARE_VERSION, "key": folder.name, "tokenizer": inputs["tokenizer"], "seq_len": seq_len,
            "dtype": token_dtype(vocab).name, "vocab_size": vocab, "eos_id": eos, "pad_id": packer.pad_id,
            "sequences": n_seq, "tokens": total, "pad_tokens": num_pad, "last_num_pad": num_pad,
            "documents": n_docs, "segments": segments,
            "packing_efficiency": (total - num_pad) / total,
            "sources": per_source, "domains": dom, "mix": mixer.report(),
            "decontam": ({"kept": kept, "dropped": n_dropped, "by_benchmark": by_bench} if dec_on else None),
            "fim_documents": sum(st["fim_documents"] for st in per_source.values()),
            "shards": shards, "inputs": inputs, "workers": cfg.workers,
            "seconds": round(time.perf_counter() - t0, 3)}
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        write_json(manifest, tmp / MANIFEST)  # written last: a folder without one is incomplete
        try:
            os.rename(tmp, folder)  # the commit point
        except OSError:  # another process prepared the same key meanwhile: use theirs
            if not (folder / MANIFEST).exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return folder, read_manifest(folder)
    except BaseException:
        if dropped_f is not None:
            dropped_f.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("CPT data: prepared %s: %d documents -> %d sequences of %d tokens (%d tokens), packing efficiency "
             "%.4f, %d dropped by decontamination, %d FIM, %.1f s with %d workers", folder, n_docs, n_seq, seq_len,
             total, manifest["packing_efficiency"], n_dropped, manifest["fim_documents"],
             manifest["seconds"], cfg.workers)
    return folder, manifest
