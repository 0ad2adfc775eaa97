"""Packing tokenized documents into fixed-length sequences with per-document isolation.

Two layouts, one output type (:class:`PackedExample`):

- ``mode="stream"`` (CPT): documents joined with EOS and cut every ``seq_len``
  tokens; a document crossing a cut (or longer than ``seq_len``) continues in
  the next sequence as a new segment. Nothing is padded except the last sequence.
- ``mode="bins"`` (SFT): whole samples placed best-fit-decreasing into bins of
  ``seq_len``; a sample is never split (too long: truncated, with a count).

``position_ids`` restart at 0 on every segment and the first token of every
segment has label -100: labels are shifted inside the model (logits at t predict
label t+1), so that label would be predicted from the previous document.

:class:`PackedCollator` turns examples into a batch. Transformers derives document
boundaries from ``position_ids`` only on its flash-attention path; under sdpa and
eager, restarts alone do not isolate documents (measured: logits of the second
document off by 0.37), so the collator builds the block-causal mask itself:

- ``sdpa``: a 4D bool mask ``[B, 1, T, T]``, True = attend. transformers'
  ``masking_utils`` returns a user 4D mask as-is, and SDPA reads bool as "attend".
- ``eager``: the same mask as additive floats (0 / dtype min): Qwen2's eager
  attention *adds* the mask to the scores, so a bool mask would add 1.0/0.0.
- ``flash_attention_2``: no ``attention_mask`` (a 2D mask, even all ones, turns
  off boundary detection); ``cu_seq_lens_q/k`` and ``max_length_q/k`` are passed,
  the names transformers' flash path reads, over the flattened batch.
- ``sdpa_segments`` (training on CPU/GPU without flash-attn,
  :mod:`domainspec.common.models.segment_attention`): the same boundaries as flash.

Usage::

    examples = pack_documents(token_lists, seq_len=8192, eos_id=tok.eos_token_id)
    print(packing_stats(examples))
    batch = PackedCollator("sdpa")(examples[:4]); loss = model(**batch).loss

Not here: tokenization, SFT rendering (``chat_data.py``).
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class PackedExample:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    seq_lens: list[int] = field(default_factory=list)  # segment lengths, in order; sum == len(input_ids)
    num_pad: int = 0  # trailing pad tokens (counted in the last segment)

    def __len__(self) -> int:
        return len(self.input_ids)

    def to_dict(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "labels": self.labels, "position_ids": self.position_ids,
                "seq_lens": self.seq_lens, "num_pad": self.num_pad}


class _Builder:
    """Accumulates segments of one sequence."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.labels: list[int] = []
        self.pos: list[int] = []
        self.lens: list[int] = []

    def add(self, ids: Sequence[int], labels: Sequence[int]) -> None:
        if not ids:
            return
        self.ids.extend(ids)
        self.labels.append(IGNORE_INDEX)  # first token of a segment is never a target
        self.labels.extend(labels[1:])
        self.pos.extend(range(len(ids)))
        self.lens.append(len(ids))

    def finish(self, seq_len: int | None, pad_id: int) -> PackedExample:
        n_pad = 0
        if seq_len is not None and len(self.ids) < seq_len:
            n_pad = seq_len - len(self.ids)
            # padding is its own segment: isolated, never a target
            self.ids.extend([pad_id] * n_pad)
            self.labels.extend([IGNORE_INDEX] * n_pad)
            self.pos.extend(range(n_pad))
            self.lens.append(n_pad)
        return PackedExample(self.ids, self.labels, self.pos, self.lens, n_pad)


def pack_documents(token_lists: Iterable[Sequence[int]], seq_len: int = 8192, eos_id: int | None = None,
                   labels: Iterable[Sequence[int]] | None = None, mode: Literal["stream", "bins"] | None = None,
                   add_eos: bool | None = None, pad_id: int | None = None, pad_last: bool = True,
                   truncate: bool = True) -> list[PackedExample]:
    """Pack token lists into sequences of ``seq_len`` (see module docstring).

    ``labels``: per-document labels (-100 = not trained), same lengths as the tokens;
    default: the tokens themselves. ``mode``: "stream" unless labels are given ("bins").
    ``add_eos``: append ``eos_id`` to each document (default: True in stream mode).
    ``pad_id``: default ``eos_id``. ``pad_last``: pad the last (stream) / every (bins)
    sequence to ``seq_len``; else sequences may be shorter and the collator pads.
    ``truncate`` (bins): cut samples longer than ``seq_len``, else drop them.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len must be >= 2, got {seq_len}")
    mode = mode or ("bins" if labels is not None else "stream")
    add_eos = (mode == "stream") if add_eos is None else add_eos
    if add_eos and eos_id is None:
        raise ValueError("pack_documents: eos_id is required to join documents with EOS")
    pad = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
    docs = []
    label_iter = iter(labels) if labels is not None else None
    for i, ids in enumerate(token_lists):
        ids = list(ids)
        lab = list(next(label_iter)) if label_iter is not None else list(ids)
        if len(lab) != len(ids):
            raise ValueError(f"pack_documents: document {i} has {len(ids)} tokens but {len(lab)} labels")
        if add_eos:
            ids.append(eos_id)
            lab.append(eos_id)  # learning to end a document is part of the objective
        if ids:
            docs.append((ids, lab))
    if mode == "stream":
        return _pack_stream(docs, seq_len, pad, pad_last)
    if mode == "bins":
        return _pack_bins(docs, seq_len, pad, pad_last, truncate)
    raise ValueError(f"pack_documents: unknown mode {mode!r}; use 'stream' or 'bins'")


def _pack_stream(docs, seq_len: int, pad: int, pad_last: bool) -> list[PackedExample]:
    out: list[PackedExample] = []
    cur, room = _Builder(), seq_len
    for ids, lab in docs:
        start = 0
        while start < len(ids):
            take = min(room, len(ids) - start)
            cur.add(ids[start:start + take], lab[start:start + take])
            start += take
            room -= take
            if room == 0:
                out.append(cur.finish(None, pad))
                cur, room = _Builder(), seq_len
    if cur.ids:
        out.append(cur.finish(seq_len if pad_last else None, pad))
    return out


class StreamPacker:
    """Incremental ``mode="stream"`` packing with bounded memory: :meth:`add` one document's
    tokens (EOS is appended), get back the sequences it completed as ``(tokens, seq_lens)``;
    :meth:`finish` returns the padded last one and its pad count. Yields exactly the
    sequences and segments of ``pack_documents(..., mode="stream")`` (tests check it)."""

    def __init__(self, seq_len: int, eos_id: int, pad_id: int | None = None):
        import numpy as np

        if seq_len < 2:
            raise ValueError(f"seq_len must be >= 2, got {seq_len}")
        self.seq_len, self.eos_id = seq_len, eos_id
        self.pad_id = eos_id if pad_id is None else pad_id
        self._buf = np.empty(seq_len, dtype=np.int64)
        self._fill, self._lens = 0, []

    def add(self, ids) -> list:
        import numpy as np

        doc = np.empty(len(ids) + 1, dtype=np.int64)
        doc[:-1] = ids
        doc[-1] = self.eos_id
        out, start = [], 0
        while start < len(doc):
            take = min(self.seq_len - self._fill, len(doc) - start)
            self._buf[self._fill:self._fill + take] = doc[start:start + take]
            self._lens.append(take)
            self._fill += take
            start += take
            if self._fill == self.seq_len:
                out.append((self._buf.copy(), self._lens))
                self._fill, self._lens = 0, []
        return out

    def finish(self) -> tuple | None:
        """The last, padded sequence as ``(tokens, seq_lens, num_pad)``, or None when nothing is left."""
        if not self._fill:
            return None
        n_pad = self.seq_len - self._fill
        self._buf[self._fill:] = self.pad_id
        lens = self._lens + ([n_pad] if n_pad else [])  # padding is its own segment
        self._fill, self._lens = 0, []
        return self._buf.copy(), lens, n_pad


def _pack_bins(docs, seq_len: int, pad: int, pad_last: bool, truncate: bool) -> list[PackedExample]:
    n_long = 0
    items = []
    for ids, lab in docs:
        if len(ids) > seq_len:
            n_long += 1
            if not truncate:
                continue
            ids, lab = ids[:seq_len], lab[:seq_len]
        items.append((ids, lab))
    if n_long:
        log.warning("packing: %d of %d samples longer than seq_len=%d were %s", n_long, len(docs), seq_len,
                    "truncated" if truncate else "dropped")
    # best-fit decreasing; stable sort keeps the input order among equal lengths (deterministic)
    order = sorted(range(len(items)), key=lambda k: -len(items[k][0]))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (room left, bin index)
    for k in order:
        n = len(items[k][0])
        j = bisect.bisect_left(free, (n, -1))
        if j < len(free):
            room, b = free.pop(j)
        else:
            room, b = seq_len, len(bins)
            bins.append([])
        bins[b].append(k)
        if room - n > 0:
            bisect.insort(free, (room - n, b))
    out = []
    for members in bins:
        bld = _Builder()
        for k in sorted(members):  # original order inside a bin
            bld.add(*items[k])
        out.append(bld.finish(seq_len if pad_last else None, pad))
    return out


def packing_stats(examples: Sequence[PackedExample]) -> dict[str, float]:
    """Token counts and efficiency (non-pad tokens / all tokens) of packed sequences."""
    total = sum(len(e) for e in examples)
    pad = sum(e.num_pad for e in examples)
    targets = sum(sum(1 for x in e.labels if x != IGNORE_INDEX) for e in examples)
    segs = sum(len(e.seq_lens) - (1 if e.num_pad else 0) for e in examples)
    return {"sequences": len(examples), "tokens": total, "pad_tokens": pad, "target_tokens": targets,
            "segments": segs, "efficiency": (total - pad) / total if total else 0.0}


def padded_efficiency(lengths: Sequence[int], batch_size: int) -> float:
    """Non-pad share when batches of ``batch_size`` samples (in order) are padded to their longest."""
    real = padded = 0
    for i in range(0, len(lengths), batch_size):
        chunk = lengths[i:i + batch_size]
        real += sum(chunk)
        padded += max(chunk) * len(chunk)
    return real / padded if padded else 0.0


# ------------------------------------------------------------------ collator


def block_causal_mask(seq_lens_per_row: Sequence[Sequence[int]], length: int):
    """Bool ``[B, 1, T, T]``: True where query t may attend key s (same segment, s <= t)."""
    import torch

    seg = torch.empty(len(seq_lens_per_row), length, dtype=torch.long)
    for b, lens in enumerate(seq_lens_per_row):
        seg[b] = torch.repeat_interleave(torch.arange(len(lens)), torch.tensor(lens))
    same = seg[:, :, None] == seg[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    return (same & causal)[:, None]


def segments_from_positions(position_ids: Sequence[int]) -> list[int]:
    """Segment lengths implied by position ids (a new segment wherever the id is not previous + 1)."""
    lens: list[int] = []
    prev = None
    for p in position_ids:
        if prev is None or p != prev + 1:
            lens.append(0)
        lens[-1] += 1
        prev = p
    return lens


def _as_example(e: PackedExample | Mapping[str, Any]) -> PackedExample:
    if isinstance(e, PackedExample):
        return e
    # rows read back from a datasets table: seq_lens may be absent (derive them; never assume one segment)
    ids, pos = list(e["input_ids"]), list(e["position_ids"])
    seq_lens = list(e.get("seq_lens") or segments_from_positions(pos))
    labels = list(e["labels"]) if e.get("labels") is not None else list(ids)
    return PackedExample(ids, labels, pos, seq_lens, int(e.get("num_pad") or 0))


class PackedCollator:
    """Batch packed examples for ``model(**batch)`` under a given attention implementation."""

    def __init__(self, attn_implementation: str = "sdpa", pad_id: int = 0, mask_dtype: Any = None,
                 pad_to_multiple_of: int | None = None):
        if attn_implementation not in ("sdpa", "eager", "flash_attention_2", "sdpa_segments"):
            raise ValueError(f"PackedCollator: attn_implementation {attn_implementation!r} not supported; "
                             "use 'sdpa', 'eager', 'flash_attention_2' or 'sdpa_segments'")
        self.attn_implementation = attn_implementation
        self.pad_id = pad_id
        self.mask_dtype = mask_dtype  # eager only: dtype of the additive mask (default float32)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[PackedExample | dict]) -> dict[str, Any]:
        import torch

        rows = [_as_example(e) for e in examples]
        if not rows:
            raise ValueError("PackedCollator: empty batch")
        length = max(len(r) for r in rows)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        ids, labels, pos, lens = [], [], [], []
        for r in rows:
            n = length - len(r)
            seg = list(r.seq_lens) or [len(r)]
            if sum(seg) != len(r):
                raise ValueError(f"PackedCollator: seq_lens {seg} do not sum to the example length {len(r)}")
            ids.append(list(r.input_ids) + [self.pad_id] * n)
            labels.append(list(r.labels) + [IGNORE_INDEX] * n)
            pos.append(list(r.position_ids) + list(range(n)))
            lens.append(seg + ([n] if n else []))
        batch: dict[str, Any] = {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long),
        }
        if self.attn_implementation in ("flash_attention_2", "sdpa_segments"):  # boundaries, no mask
            flat = [x for seg in lens for x in seg]
            cu = torch.zeros(len(flat) + 1, dtype=torch.int32)
            cu[1:] = torch.cumsum(torch.tensor(flat), 0)
            batch.update(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=max(flat), max_length_k=max(flat))
            return batch
        mask = block_causal_mask(lens, length)
        if self.attn_implementation == "eager":
            dtype = self.mask_dtype or torch.float32
            mask = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, torch.finfo(dtype).min)
        batch["attention_mask"] = mask
        return batch
