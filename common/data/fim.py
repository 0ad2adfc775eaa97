"""Fill-in-the-middle (FIM) for code documents, Qwen2.5-Coder token format, file level.

A document is split at two uniform random character positions into
prefix / middle / suffix (Bavarian et al. 2022, "Efficient Training of Language
Models to Fill in the Middle") and rewritten as

- PSM: ``<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>{middle}``
  (Qwen2.5-Coder's format);
- SPM: ``<|fim_prefix|><|fim_suffix|>{suffix}<|fim_middle|>{prefix}{middle}``:
  suffix first, then prefix and middle as one continuous stream, the SPM variant of
  Bavarian et al. (appendix D) that StarCoder uses; the model predicts the middle
  right after the prefix, as in left-to-right decoding.

Usage::

    cfg = FIMConfig(rate=0.5, mode="psm")
    docs = list(apply_fim_documents(code_docs, cfg, seed=0))   # deterministic per (seed, index)
    undo_fim(docs[0]) == code_docs[0]

Documents that already contain a FIM token are left unchanged (they cannot be
split unambiguously). Not here: repo-level FIM (``<|repo_name|>``, ``<|file_sep|>``).
"""
from __future__ import annotations

import random
from typing import Iterable, Iterator, Literal

from pydantic import Field

from domainspec.common.config import Config

FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"
_FIM_TOKENS = (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)


class FIMConfig(Config):
    rate: float = Field(0.5, ge=0, le=1, description="Fraction of code documents rewritten as FIM "
                                                     "(0.5, as in Bavarian et al. 2022 / Qwen2.5-Coder).")
    mode: Literal["psm", "spm", "mixed"] = Field("psm", description="psm (Qwen2.5-Coder), spm, or mixed.")
    spm_rate: float = Field(0.5, ge=0, le=1, description="With mode=mixed: fraction of FIM documents in SPM.")


def fim_transform(text: str, rng: random.Random, mode: Literal["psm", "spm"] = "psm") -> str:
    """Split ``text`` at two random character positions and rewrite it in ``mode``."""
    if any(t in text for t in _FIM_TOKENS):
        return text
    a, b = sorted(rng.randint(0, len(text)) for _ in range(2))
    prefix, middle, suffix = text[:a], text[a:b], text[b:]
    if mode == "psm":
        return f"{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}{middle}"
    if mode == "spm":
        return f"{FIM_PREFIX}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}{prefix}{middle}"
    raise ValueError(f"fim_transform: unknown mode {mode!r}; use 'psm' or 'spm'")


def undo_fim(text: str) -> str:
    """The original document of a (PSM or SPM) FIM text; other texts are returned unchanged."""
    if not text.startswith(FIM_PREFIX) or text.count(FIM_SUFFIX) != 1 or text.count(FIM_MIDDLE) != 1:
        return text
    body = text[len(FIM_PREFIX):]
    if body.startswith(FIM_SUFFIX):  # SPM: suffix, then prefix+middle
        suffix, pm = body[len(FIM_SUFFIX):].split(FIM_MIDDLE)
        return pm + suffix
    prefix, rest = body.split(FIM_SUFFIX)  # PSM
    suffix, middle = rest.split(FIM_MIDDLE)
    return prefix + middle + suffix


def apply_fim(text: str, cfg: FIMConfig, rng: random.Random) -> str:
    """With probability ``cfg.rate``, the FIM form of ``text``; else ``text`` itself."""
    if rng.random() >= cfg.rate:
        return text
    mode = cfg.mode if cfg.mode != "mixed" else ("spm" if rng.random() < cfg.spm_rate else "psm")
    return fim_transform(text, rng, mode)


def apply_fim_documents(docs: Iterable[str], cfg: FIMConfig, seed: int = 0) -> Iterator[str]:
    """FIM over a document stream; document ``i``'s choice depends only on (seed, i)."""
    for i, d in enumerate(docs):
        yield apply_fim(d, cfg, random.Random(f"fim:{seed}:{i}"))
