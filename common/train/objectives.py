"""Training objectives: what differs between CPT, SFT and reward modelling (the loop does not).

An :class:`Objective` owns three things: how rows of a dataset become a batch
(``collate``), the forward call and loss (``loss``), and the weight of a batch in the
optimizer step (``num_targets``). The loop in :mod:`domainspec.common.train.loop` only
schedules, moves batches to the device, backpropagates and steps.

Gradient accumulation and data parallelism weight micro-batches by their number of
targets, not equally: ``loss`` returns the *mean* over the micro-batch's targets and the
loop rescales it by ``num_targets(batch) / targets in the whole step (all ranks)``, so a
step's gradient is that of the mean over every target token of the step, however the
step is split into micro-batches and ranks.

Usage::

    obj = CausalLMObjective(attn_implementation="sdpa")   # packed CPT/SFT rows
    batch = obj.collate([ds[0], ds[1]])
    loss, metrics = obj.loss(model, batch)

A reward-model objective (math/) implements the same protocol: its ``collate`` builds
chosen/rejected or scalar-label batches, ``loss`` calls its scalar-head model itself,
and ``num_targets`` counts pairs or examples. This module does not tokenize or pack;
that is :mod:`domainspec.common.data.packing`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # torch stays out of the CLI import path
    import torch

IGNORE_INDEX = -100  # labels with this value are not targets (HF / PyTorch convention)


@runtime_checkable
class Objective(Protocol):
    """collate + loss + metrics; the contract between a training recipe and the loop."""

    def collate(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rows of the dataset -> one micro-batch (a dict of tensors; the loop moves tensors to the device)."""

    def loss(self, model: Any, batch: Mapping[str, Any]) -> tuple["torch.Tensor", dict[str, float]]:
        """Forward ``model`` on ``batch``; return (mean loss over the batch's targets, metrics).

        ``metrics`` values are per-target means too; the loop averages them over the
        step with the same ``num_targets`` weights before logging.
        """

    def num_targets(self, batch: Mapping[str, Any]) -> int:
        """Weight of this micro-batch in the step mean (target tokens for LM, pairs for RM)."""

    def num_tokens(self, batch: Mapping[str, Any]) -> int:
        """Tokens processed by the forward pass (for tokens/s and MFU)."""


class CausalLMObjective:
    """Next-token prediction on packed rows (CPT and SFT).

    Rows hold ``input_ids``, ``labels`` (aligned with ``input_ids``; -100 = not a
    target) and ``position_ids`` restarting per document. The default collator is
    :class:`domainspec.common.data.packing.PackedCollator`, which adds the block-causal
    attention mask (sdpa/eager) or relies on position_ids (flash_attention_2).
    """

    def __init__(self, attn_implementation: str = "sdpa", collator: Callable[[Sequence[Mapping]], dict] | None = None):
        self.attn_implementation = attn_implementation
        self._collator = collator

    @property
    def collator(self) -> Callable[[Sequence[Mapping]], dict]:
        if self._collator is None:
            from domainspec.common.data.packing import PackedCollator
            self._collator = PackedCollator(self.attn_implementation)
        return self._collator

    def collate(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.collator(rows)

    def loss(self, model: Any, batch: Mapping[str, Any]) -> tuple["torch.Tensor", dict[str, float]]:
        import torch.nn.functional as F

        # everything the collator built except labels: ids, positions, and the mask (sdpa/eager) or
        # cu_seq_lens_* / max_length_* (flash_attention_2) that keep packed documents apart
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs, use_cache=False).logits
        # labels are aligned with input_ids: the logit at t predicts the token at t+1. Shifting the labels
        # (last position padded with -100) instead of slicing the logits avoids copying the [B, T, V] logits
        # and its gradient; the gradient is bitwise the same, the summed loss may differ in the last bit.
        shift_labels = F.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE_INDEX).reshape(-1)
        total = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), shift_labels,
                                ignore_index=IGNORE_INDEX, reduction="sum")
        n = (shift_labels != IGNORE_INDEX).sum().clamp(min=1)  # a tensor: no host sync on an accelerator
        return total / n, {}

    def num_targets(self, batch: Mapping[str, Any]) -> int:
        return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())

    def num_tokens(self, batch: Mapping[str, Any]) -> int:
        return int(batch["input_ids"].numel())
