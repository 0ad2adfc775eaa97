"""What the training loop reports: metrics.jsonl, TensorBoard (when installed), MFU.

``metrics.jsonl`` has one JSON row per logged step: ``step`` (optimizer steps done),
``loss`` (mean over the step's target tokens, all ranks), ``lr`` (the LR that update
used), ``grad_norm`` (before clipping), ``tokens_per_second`` (all ranks, since the
previous row), ``mfu`` (null when the device's peak FLOPs are unknown, e.g. on CPU)
plus the objective's metrics. On resume, rows after the checkpoint's step are dropped
so the file reads as one uninterrupted run.

MFU = model FLOPs per token x tokens/s / (peak FLOPs per device x world size), both
from :mod:`domainspec.common.train.flops`.
"""
from __future__ import annotations

from domainspec.common.artifacts import read_jsonl_rows, write_jsonl

import json
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only metrics.jsonl (+ TensorBoard); only rank 0 writes."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: int = 0):
        self.path = Path(out_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step == 0:
            self.path.write_text("")
        elif self.path.exists():
            # a killed run may leave a torn last row; rows past the checkpoint are trained again
            keep = [r for r in read_jsonl_rows(self.path, tolerate_torn_tail=True) if r["step"] <= resume_step]
            write_jsonl(keep, self.path)
        try:
            from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(Path(out_dir) / "tensorboard"))
        except ImportError:
            log.info("tensorboard not installed; metrics go to %s only", self.path)

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) and k != "loss" else v) for k, v in row.items()}
        with self.path.open("a") as f:
            f.write(json.dumps(clean) + "\n")
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
