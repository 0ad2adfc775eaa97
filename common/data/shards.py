"""Packed CPT sequences on disk: memory-mapped token shards plus a document-boundary index.

A prepared folder (written by :mod:`~domainspec.common.data.prepare`) holds::

    manifest.json               what was prepared from what (see prepare.py), shard list, self-hash
    shard_00000.tokens          4096-byte header (magic + JSON: format, dtype, seq_len, sequences,
                                tokenizer fingerprint, prepare key), then sequences x seq_len tokens
                                (uint16 when the vocabulary fits, else uint32), row-major
    shard_00000.seglens.npy     int32: every sequence's segment lengths, concatenated
    shard_00000.segoffs.npy     int64 [sequences + 1]: sequence i's segments are seglens[offs[i]:offs[i+1]]

Why raw token arrays and not Arrow (``datasets``): every row has the same length, so row i
is at a fixed byte offset: a training rank reads any sequence in O(1) straight from the page
cache, with no decoding, at 2 bytes/token (datasets.map writes list<int64>, 8 bytes/token plus
offsets). The writer appends rows and keeps only the current shard's boundary index in
memory, so preparing a corpus costs the same memory at any size. It is the layout
nanoGPT's ``train.bin`` and Megatron's ``.bin``/``.idx`` indexed datasets use; the
boundary index is what per-document attention isolation needs
(:class:`~domainspec.common.data.packing.PackedCollator`).

Labels and positions are not stored: in stream packing, labels equal the tokens except the
first token of each segment (-100), position ids restart at 0 per segment, and only the very
last sequence may end with a padding segment (``last_num_pad`` in the header and manifest).

Usage::

    ds = ShardDataset("work/cpt_data/3f2a...")     # a Sequence of PackedExample
    len(ds), ds[0].input_ids, ds[0].seq_lens
"""
from __future__ import annotations

import bisect
import json
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from domainspec.common.config import ConfigError
from domainspec.common.data.packing import IGNORE_INDEX, PackedExample

SHARD_FORMAT = 1
MAGIC = b"DSPKSHRD"
HEADER_BYTES = 4096
MANIFEST = "manifest.json"


class ShardError(ConfigError):
    """A prepared folder or shard that cannot be used; the message names the path and what to do."""


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def shard_name(k: int) -> str:
    return f"shard_{k:05d}"


class ShardWriter:
    """Append packed sequences to ``folder`` as shards of at most ``shard_sequences`` rows."""

    def __init__(self, folder: Path, seq_len: int, dtype: np.dtype, header: dict[str, Any],
                 shard_sequences: int):
        self.folder, self.seq_len, self.dtype = Path(folder), seq_len, np.dtype(dtype)
        self.header, self.shard_sequences = dict(header), shard_sequences
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shards: list[dict[str, Any]] = []
        self._f = None
        self._n = 0
        self._seglens: list[int] = []
        self._offs: list[int] = [0]

    def add(self, tokens: np.ndarray, seg_lens: Sequence[int]) -> None:
        if self._f is None:
            self._open()
        self._f.write(np.ascontiguousarray(tokens, dtype=self.dtype).tobytes())
        self._seglens.extend(seg_lens)
        self._offs.append(len(self._seglens))
        self._n += 1
        if self._n == self.shard_sequences:
            self._close(last_num_pad=0)

    def _open(self) -> None:
        name = shard_name(len(self.shards))
        self._f = open(self.folder / f"{name}.tokens", "wb")
        self._f.write(b"\0" * HEADER_BYTES)  # rewritten on close, when the row count is known

    def _close(self, last_num_pad: int) -> None:
        name = shard_name(len(self.shards))
        head = {**self.header, "format": SHARD_FORMAT, "dtype": self.dtype.name, "seq_len": self.seq_len,
                "sequences": self._n, "last_num_pad": last_num_pad}
        raw = MAGIC + json.dumps(head, sort_keys=True).encode()
        if len(raw) > HEADER_BYTES:
            raise ValueError(f"shard header too long ({len(raw)} bytes)")
        self._f.seek(0)
        self._f.write(raw.ljust(HEADER_BYTES, b" "))
        self._f.close()
        np.save(self.folder / f"{name}.seglens.npy", np.asarray(self._seglens, dtype=np.int32))
        np.save(self.folder / f"{name}.segoffs.npy", np.asarray(self._offs, dtype=np.int64))
        self.shards.append({"name": name, "sequences": self._n,
                            "bytes": HEADER_BYTES + self._n * self.seq_len * self.dtype.itemsize})
        self._f, self._n, self._seglens, self._offs = None, 0, [], [0]

    def finish(self, last_num_pad: int) -> list[dict[str, Any]]:
        """Close the open shard (its last row padded by ``last_num_pad``); the shard list."""
        if self._f is not None:
            self._close(last_num_pad)
        elif last_num_pad and self.shards:
            raise ValueError("ShardWriter: padding reported for a shard already closed")
        return self.shards


def read_header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard: {e}. Prepare the data again "
                         f"(domainspec cpt prepare --config F).") from e
    if not raw.startswith(MAGIC):
        raise ShardError(f"{path}: not a domainspec token shard (bad magic). Delete its folder and prepare again "
                         f"(domainspec cpt prepare --config F).")
    try:
        return json.loads(raw[len(MAGIC):].decode().strip())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: corrupt shard header ({e}). Delete its folder and prepare again.") from e


class ShardDataset:
    """The prepared sequences of one folder as a read-only ``Sequence[PackedExample]``.

    Shards are memory-mapped lazily in each process (DataLoader workers included), so the
    object pickles cheaply. ``tokenizer`` (a fingerprint string, optional): every shard must
    have been tokenized by it.
    """

    def __init__(self, folder: str | Path, tokenizer: str | None = None):
        from domainspec.common.data.prepare import read_manifest

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.fingerprint = self.manifest["key"]
        self.seq_len = int(self.manifest["seq_len"])
        self.last_num_pad = int(self.manifest["last_num_pad"])
        tok = tokenizer or self.manifest["tokenizer"]
        if tokenizer is not None and tokenizer != self.manifest["tokenizer"]:
            raise ShardError(f"{self.folder / MANIFEST}: these shards were tokenized with another tokenizer "
                             f"(fingerprint {self.manifest['tokenizer'][:12]}, this model's is {tokenizer[:12]}). "
                             f"Prepare the data with this model's tokenizer (domainspec cpt prepare --config F), or "
                             f"train the model the shards were prepared for.")
        self._shards = self.manifest["shards"]
        self._starts = [0]
        for s in self._shards:
            self._starts.append(self._starts[-1] + int(s["sequences"]))
        for s in self._shards:  # cheap per-shard checks: header, size, tokenizer
            path = self.folder / f"{s['name']}.tokens"
            head = read_header(path)
            if head.get("tokenizer") != tok:
                raise ShardError(f"{path}: shard was tokenized with another tokenizer (fingerprint "
                                 f"{str(head.get('tokenizer'))[:12]}, expected {tok[:12]}). The folder mixes shards "
                                 f"of different preparations: delete {self.folder} and prepare again.")
            if head.get("key") != self.fingerprint or head.get("sequences") != s["sequences"]:
                raise ShardError(f"{path}: shard belongs to another preparation (key {str(head.get('key'))[:12]}, "
                                 f"manifest {self.fingerprint[:12]}). Delete {self.folder} and prepare again.")
            size = path.stat().st_size
            if size != s["bytes"]:
                raise ShardError(f"{path}: {size} bytes, the manifest says {s['bytes']} (truncated or replaced). "
                                 f"Delete {self.folder} and prepare again.")
        self._maps: dict[int, tuple] = {}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_maps": {}}  # memory maps are reopened in the receiving process

    def __len__(self) -> int:
        return self._starts[-1]

    def _shard(self, k: int) -> tuple:
        m = self._maps.get(k)
        if m is None:
            s = self._shards[k]
            path = self.folder / f"{s['name']}.tokens"
            dtype = np.dtype(self.manifest["dtype"])
            tokens = np.memmap(path, dtype=dtype, mode="r", offset=HEADER_BYTES,
                               shape=(int(s["sequences"]), self.seq_len))
            seglens = np.load(self.folder / f"{s['name']}.seglens.npy", mmap_mode="r")
            offs = np.load(self.folder / f"{s['name']}.segoffs.npy", mmap_mode="r")
            m = self._maps[k] = (tokens, seglens, offs)
        return m

    def tokens(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Sequence ``i``'s tokens and segment lengths, as numpy views of the memory map."""
        if not 0 <= i < len(self):
            raise IndexError(f"sequence {i} out of range (0..{len(self) - 1})")
        k = bisect.bisect_right(self._starts, i) - 1
        tokens, seglens, offs = self._shard(k)
        j = i - self._starts[k]
        return tokens[j], seglens[offs[j]:offs[j + 1]]

    def __getitem__(self, i: int) -> PackedExample:
        i = int(i)
        if i < 0:
            i += len(self)
        toks, lens = self.tokens(i)
        ids = toks.astype(np.int64)
        lens = lens.astype(np.int64)
        num_pad = self.last_num_pad if i == len(self) - 1 else 0
        starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
        labels = ids.copy()
        labels[starts] = IGNORE_INDEX  # first token of a segment is never a target
        if num_pad:
            labels[len(ids) - num_pad:] = IGNORE_INDEX
        pos = np.arange(len(ids)) - np.repeat(starts, lens)
        return PackedExample(ids.tolist(), labels.tolist(), pos.tolist(), lens.tolist(), num_pad)

    def __iter__(self) -> Iterator[PackedExample]:
        for i in range(len(self)):
            yield self[i]


def folder_size(folder: Path) -> int:
    return sum(os.path.getsize(p) for p in Path(folder).iterdir() if p.is_file())
