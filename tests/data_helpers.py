"""Shared test helpers: a small real tokenizer, a tiny Qwen2, and the shared benchmark data.

Tests that read the benchmark files (``$DOMAINSPEC_BENCHMARK_DATA``, default ``../shared/data``
beside the repo) use :func:`shared_data` / :func:`needs_shared_data`: absent data skips the test
on a workstation but FAILS it under CI (``CI=true`` or ``CI=1``), so CI cannot go green without them.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest


@functools.lru_cache(maxsize=None)
def small_tokenizer():
    """Qwen-style byte-level BPE + Qwen special tokens + ChatML, trained in ~1 s (the tiny model's recipe)."""
    from domainspec.common.data.builtin.corpora import stdlib_code_documents
    from domainspec.common.data.builtin.math_problems import math_corpus_documents
    from domainspec.common.models.tiny import train_tokenizer

    return train_tokenizer(list(math_corpus_documents(200)) + stdlib_code_documents(15), vocab_size=600)


def tiny_qwen2(attn_implementation: str, vocab_size: int = 128, seed: int = 0):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM._from_config(cfg, attn_implementation=attn_implementation).eval()


def shared_data_dir() -> Path:
    """The benchmark data folder, as decontamination finds it (one rule for both)."""
    from domainspec.eval.benchmarks.decontamination import default_data_dir

    return default_data_dir()


def shared_data(rel: str = "") -> Path:
    """``rel`` under the shared data; skips the calling test when it is absent, fails it under CI."""
    path = shared_data_dir() / rel
    if not path.exists():
        msg = f"benchmark data not found: {path} (set DOMAINSPEC_BENCHMARK_DATA or put it in ../shared/data)"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"CI needs the benchmark data: {msg}", pytrace=False)
        pytest.skip(msg)
    return path


def needs_shared_data(*rels: str):
    """Decorator: run the test only where every ``rels`` path exists (see :func:`shared_data`)."""
    def decorate(test):
        @functools.wraps(test)
        def wrapper(*args, **kwargs):
            for rel in rels or ("",):
                shared_data(rel)
            return test(*args, **kwargs)
        return wrapper
    return decorate


def config_error(cls, path: Path, text: str) -> str:
    """The ConfigError message of loading ``text`` (written to ``path``) as ``cls``; fails if it loads."""
    from domainspec.common.config import ConfigError, load_config

    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(cls, path)
    return str(e.value)
