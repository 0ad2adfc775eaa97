"""Tokenize a text dataset with ``datasets.map``, cached by tokenizer + content hash.

The cache key (``datasets``' ``new_fingerprint`` and the Arrow cache file name) is
sha256 of the tokenizer's full definition (``tokenizer.json``-equivalent string and
class) and of the documents' text, so a changed corpus or tokenizer never reuses a
stale cache, and the same ones always do (STYLE.md #8: content hashes, never "a
file exists"). Streaming datasets are tokenized lazily and not cached.

Usage::

    ds = load_text_dataset(src)                               # sources.py
    tok_ds = tokenize_dataset(ds, tokenizer, cache_dir="work/cache/tokens")
    token_lists = tok_ds["input_ids"]                         # -> packing.pack_documents

Not here: special tokens (none are added; packing appends EOS), FIM (``fim.py``,
applied to text before tokenization).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterable

TOKENIZATION_VERSION = "1"


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides the tokenizer's output (its serialized definition and class)."""
    h = hashlib.sha256(f"{type(tokenizer).__name__}:{TOKENIZATION_VERSION}".encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # a slow tokenizer: its vocabulary is the best proxy
        h.update(repr(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()


def texts_fingerprint(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        b = t.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))  # length-prefixed: ["ab","c"] != ["a","bc"]
        h.update(b)
    return h.hexdigest()


def _encode(batch: dict, tokenizer) -> dict:
    enc = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False)
    return {"input_ids": enc["input_ids"]}


def tokenize_dataset(ds, tokenizer, cache_dir: str | Path | None = None, num_proc: int | None = None,
                     batch_size: int = 256):
    """``ds`` (one "text" column) -> a dataset with "input_ids" (and "text" dropped).

    ``cache_dir``: folder of Arrow cache files (default: datasets' own cache for
    file-backed datasets, none for in-memory ones).
    """
    import datasets

    if isinstance(ds, datasets.IterableDataset):
        return ds.map(_encode, batched=True, batch_size=batch_size, fn_kwargs={"tokenizer": tokenizer},
                      remove_columns=["text"])
    if "text" not in ds.column_names:
        raise ValueError(f"tokenize_dataset: expected a 'text' column, got {ds.column_names}")
    key = hashlib.sha256(f"{tokenizer_fingerprint(tokenizer)}:{texts_fingerprint(_iter_text(ds))}".encode())
    fp = key.hexdigest()[:32]
    kwargs = {}
    if cache_dir is not None:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        kwargs["cache_file_name"] = str(Path(cache_dir) / f"tokens-{fp}.arrow")
    return ds.map(_encode, batched=True, batch_size=batch_size, fn_kwargs={"tokenizer": tokenizer},
                  remove_columns=["text"], new_fingerprint=fp, load_from_cache_file=True,
                  num_proc=num_proc, desc="tokenizing", **kwargs)


def _iter_text(ds) -> Iterable[str]:
    for batch in ds.iter(batch_size=1000):
        yield from batch["text"]


def tokenize_texts(texts: Iterable[str], tokenizer, cache_dir: str | Path | None = None) -> list[list[int]]:
    """Token id lists of ``texts`` (through :func:`tokenize_dataset`, so cached when ``cache_dir`` is set)."""
    import datasets

    ds = datasets.Dataset.from_dict({"text": list(texts)})
    if len(ds) == 0:
        return []
    return tokenize_dataset(ds, tokenizer, cache_dir)["input_ids"]
