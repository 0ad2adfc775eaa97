"""Learning-rate schedules: the one definition every stage uses (CPT, SFT, reward model).

``lr_lambda(kind, total_steps, ...)`` returns an :class:`LRSchedule`, a picklable
callable ``step -> multiplier of the peak LR`` for ``torch.optim.lr_scheduler.LambdaLR``.
Steps are 0-based optimizer steps; the multiplier at step ``s`` is the LR used *by*
update ``s``. With ``w`` warmup steps the peak is reached at step ``w - 1`` (the end of
warmup), so no update runs at LR 0.

Kinds:

- ``constant``: linear warmup, then constant with no decay. Qwen2.5-Coder / Qwen2.5-Math
  continued pretraining (peak reached after 3% warmup, held to the end).
- ``cosine_ramp_constant``: the LR rises along a half-cosine ramp over the warmup, then
  stays at the peak (Qwen2.5-Coder SFT).
- ``cosine``: linear warmup, then cosine decay to ``min_lr_ratio`` x peak at the last step.

This module does not own an optimizer or a scheduler object; :mod:`domainspec.common.train.loop`
wraps the callable in ``LambdaLR``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["constant", "cosine_ramp_constant", "cosine"]
SCHEDULE_KINDS: tuple[str, ...] = ("constant", "cosine_ramp_constant", "cosine")


def warmup_steps_for(total_steps: int, warmup_ratio: float = 0.03, warmup_steps: int | None = None) -> int:
    """Warmup length in steps: ``warmup_steps`` if given, else ``round(ratio * total)``.

    ``round`` rather than ``ceil`` because ``0.03 * 1000`` is ``30.000000000000004`` in floats.
    """
    if warmup_steps is not None:
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        return min(warmup_steps, total_steps)
    if not 0.0 <= warmup_ratio <= 1.0:
        raise ValueError(f"warmup_ratio must be in [0, 1], got {warmup_ratio}")
    return min(total_steps, int(round(warmup_ratio * total_steps)))


@dataclass(frozen=True)
class LRSchedule:
    """``schedule(step)`` -> multiplier of the peak LR for 0-based optimizer step ``step``."""

    kind: str
    total_steps: int
    warmup_steps: int
    min_lr_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        w = self.warmup_steps
        if step < w:
            frac = (step + 1) / w  # 1/w at step 0, exactly 1.0 at step w-1
            if self.kind == "cosine_ramp_constant":
                return 0.5 * (1.0 - math.cos(math.pi * frac))
            return frac
        if self.kind in ("constant", "cosine_ramp_constant"):
            return 1.0
        # cosine: continues from the peak at step w-1 down to min_lr_ratio at the last step
        span = max(1, self.total_steps - w)
        progress = min(1.0, (step - (w - 1)) / span) if w > 0 else min(1.0, step / max(1, self.total_steps - 1))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def lr_lambda(kind: str, total_steps: int, warmup_ratio: float = 0.03, warmup_steps: int | None = None,
              min_lr_ratio: float = 0.0) -> LRSchedule:
    """Build the schedule ``kind`` (one of :data:`SCHEDULE_KINDS`) for ``total_steps`` optimizer steps."""
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown LR schedule {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
    return LRSchedule(kind, total_steps, warmup_steps_for(total_steps, warmup_ratio, warmup_steps), min_lr_ratio)
