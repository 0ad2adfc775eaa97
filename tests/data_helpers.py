"""Shared fixtures of the tests/test_data_*.py files: a small real tokenizer and a tiny Qwen2."""
from __future__ import annotations

import functools


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
