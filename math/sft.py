"""Supervised fine-tuning of a policy on chat conversations, on the shared training loop.

The math loop's SFT steps (the initial SFT and each round's SFT on rejection-sampled data) go
through here: conversations (messages lists) are rendered with the tokenizer's chat template
(``common.chat_data.render_sft_example``: loss on assistant tokens only), packed without
cross-sample attention (``pack_sft_examples``) and trained with ``CausalLMObjective`` by
``common.trainer.train``. No loop of its own; resumable through the trainer's checkpoints.

Usage::

    final = sft_on_conversations("runs/base", convs, TrainConfig(lr=1e-3, max_steps=100), 256, "runs/sft")
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)


def sft_on_conversations(init_from: str | Path, conversations: Sequence[list[dict]], train_cfg, seq_len: int,
                         out_dir: str | Path, resume: bool = True) -> Path:
    """Fine-tune the causal LM at ``init_from`` on ``conversations``; returns ``out_dir/final``."""
    from domainspec.common.chat_data import pack_sft_examples, render_sft_example
    from domainspec.common.modeling import ModelConfig, load_model_and_tokenizer
    from domainspec.common.objectives import CausalLMObjective
    from domainspec.common.trainer import train
    if not conversations:
        raise ValueError(f"SFT into {out_dir}: no conversations to train on")
    model, tok = load_model_and_tokenizer(ModelConfig(name_or_path=str(init_from)), for_training=True)
    examples = []
    for conv in conversations:
        ids, labels = render_sft_example(conv, tok, max_length=seq_len)
        if any(x != -100 for x in labels[1:]):  # a sample truncated before its answer teaches nothing
            examples.append((ids, labels))
    packed = pack_sft_examples(examples, seq_len, pad_id=tok.pad_token_id or 0, pad_last=True)
    rows = [p.to_dict() for p in packed]
    attn = getattr(model.config, "_attn_implementation", None) or "sdpa"
    log.info("SFT: %d conversations -> %d packed rows of %d tokens (%s)", len(examples), len(rows), seq_len, attn)
    result = train(model, tok, rows, CausalLMObjective(attn), train_cfg, out_dir, resume=resume)
    return Path(result.final_dir)
