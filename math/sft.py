"""Supervised fine-tuning of a policy on chat conversations, on the shared training loop.

The math loop's SFT steps (the initial SFT and each round's SFT on rejection-sampled data) go
through here, into the one SFT path of the engine (``common.recipes.sft.sft_train``: chat-template
rendering with loss on assistant tokens only, packing without cross-sample attention, the shared
training loop). No loop of its own; resumable through the trainer's checkpoints.

Usage::

    final = sft_on_conversations("runs/base", convs, TrainConfig(lr=1e-3, max_steps=100), 256, "runs/sft")
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence



def sft_on_conversations(init_from: str | Path, conversations: Sequence[list[dict]], train_cfg, seq_len: int,
                         out_dir: str | Path, resume: bool = True) -> Path:
    """Fine-tune the causal LM at ``init_from`` on ``conversations``; returns ``out_dir/final``.

    Long solutions are truncated to ``seq_len`` (not dropped); one cut before its answer is dropped.
    """
    from domainspec.common.models.loading import ModelConfig
    from domainspec.common.recipes.sft import sft_train

    result, _ = sft_train(ModelConfig(name_or_path=str(init_from)), conversations, train_cfg, seq_len, out_dir,
                          resume=resume, drop_longer=False, name=f"SFT into {out_dir}")
    return Path(result.final_dir)
