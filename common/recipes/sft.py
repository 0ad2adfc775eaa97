"""Supervised fine-tuning on chat conversations, on the one training loop.

Conversations (messages lists) are rendered with the tokenizer's chat template with the loss
on assistant tokens only (:func:`~domainspec.common.data.chat_data.render_sft_example`), packed with
per-sample attention isolation (:func:`~domainspec.common.data.chat_data.pack_sft_examples`) and
trained with :class:`~domainspec.common.train.objectives.CausalLMObjective` by
:func:`~domainspec.common.train.loop.train`. Coder's multi-stage SFT and the math loop's SFT steps
call :func:`sft_train`; the ``sft`` pipeline stage trains one stage on conversation files.

Usage::

    final, report = sft_train(ModelConfig(name_or_path="runs/cpt/final"), conversations,
                              TrainConfig(lr=1e-5, schedule="cosine_ramp_constant"), 2048, "runs/sft")
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from pydantic import Field

from domainspec.common.config import Config, ConfigError
from domainspec.common.models.loading import ModelConfig
from domainspec.common.data.sources import DataSourceConfig
from domainspec.common.pipeline.stages import StageContext, StageType
from domainspec.common.train.loop import TrainConfig

log = logging.getLogger(__name__)


def sft_train_defaults() -> TrainConfig:
    # Qwen2.5-Coder SFT: the LR rises along a cosine ramp over 3% warmup, then stays constant
    return TrainConfig(lr=1e-5, schedule="cosine_ramp_constant", warmup_ratio=0.03)


def build_sft_rows(conversations: Sequence[list[dict]], tokenizer, seq_len: int, drop_longer: bool = True,
                   name: str = "sft") -> tuple[list[dict], dict[str, Any]]:
    """Render, filter and pack conversations into training rows; returns (rows, data report).

    A conversation longer than ``seq_len`` is dropped (``drop_longer``) or truncated; one left
    without any assistant token to learn from is dropped either way. Nothing is dropped silently:
    the report counts each reason.
    """
    from domainspec.common.data.chat_data import pack_sft_examples, render_sft_example
    from domainspec.common.data.packing import packing_stats

    examples, too_long, no_target = [], 0, 0
    for conv in conversations:
        ids, labels = render_sft_example(conv, tokenizer)
        if len(ids) > seq_len:
            too_long += 1
            if drop_longer:
                continue
            ids, labels = ids[:seq_len], labels[:seq_len]
        if all(x == -100 for x in labels[1:]):
            no_target += 1
            continue
        examples.append((ids, labels))
    if not examples:
        raise ConfigError(f"{name}: none of {len(conversations)} conversations fits seq_len {seq_len} "
                          f"with an assistant turn to learn from")
    packed = pack_sft_examples(examples, seq_len, pad_id=tokenizer.pad_token_id or 0, pad_last=True)
    stats = packing_stats(packed)
    report = {"conversations": len(conversations), "trained": len(examples), "longer_than_seq_len": too_long,
              "dropped_longer": too_long if drop_longer else 0, "truncated": 0 if drop_longer else too_long,
              "without_targets": no_target, "packed_rows": len(packed), "packing": stats,
              "target_tokens": sum(sum(1 for x in lab[1:] if x != -100) for _, lab in examples)}
    log.info("%s: %d conversations -> %d packed rows of %d tokens (packing efficiency %.3f); "
             "%d longer than seq_len (%s), %d without targets", name, len(examples), len(packed), seq_len,
             stats.get("efficiency", float("nan")), too_long, "dropped" if drop_longer else "truncated", no_target)
    return [p.to_dict() for p in packed], report


def sft_train(model_cfg: ModelConfig, conversations: Sequence[list[dict]], train_cfg: TrainConfig, seq_len: int,
              out_dir: str | Path, resume: bool = True, drop_longer: bool = True, name: str = "sft"):
    """Fine-tune ``model_cfg``'s model on ``conversations``; returns (TrainResult, data report).

    Writes ``data_report.json`` beside the trainer's checkpoints, metrics.jsonl and ``final/``.
    """
    from domainspec.common.models.loading import load_model_and_tokenizer
    from domainspec.common.train.objectives import CausalLMObjective
    from domainspec.common.train.loop import train

    if not conversations:
        raise ConfigError(f"{name}: no conversations to train on")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_model_and_tokenizer(model_cfg, for_training=True)
    rows, report = build_sft_rows(conversations, tokenizer, seq_len, drop_longer, name)
    (out / "data_report.json").write_text(json.dumps(report, indent=2))
    objective = CausalLMObjective(getattr(model.config, "_attn_implementation", None) or "sdpa")
    result = train(model, tokenizer, rows, objective, train_cfg, out, resume=resume)
    return result, report


class SFTConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The model to fine-tune.")
    data: list[DataSourceConfig] = Field(min_length=1, description="Conversation files or hub datasets (messages "
                                         "lists, instruction/input/output or prompt/completion rows).")
    seq_len: int = Field(2048, ge=16, description="Packed sequence length in tokens.")
    drop_longer: bool = Field(True, description="Drop conversations longer than seq_len (else truncate them).")
    train: TrainConfig = Field(default_factory=sft_train_defaults, description="Optimizer, schedule, batch.")


def run_sft_stage(cfg: SFTConfig, ctx: StageContext) -> dict[str, Any]:
    from domainspec.common.data.chat_data import load_sft_conversations

    conversations = [conv for src in cfg.data for conv in load_sft_conversations(src)]
    result, report = sft_train(cfg.model, conversations, cfg.train, cfg.seq_len, ctx.out_dir, resume=ctx.resume,
                               drop_longer=cfg.drop_longer, name=ctx.stage)
    return {"data": report, "steps": result.steps, "final_loss": result.final_loss}


SFT_STAGE = StageType("sft", SFTConfig, run_sft_stage, outputs={"model": "final"}, distributed=True,
                      description="one SFT stage on conversation files")
