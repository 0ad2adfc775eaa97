"""The training data stream: which dataset rows each rank trains at each step, built ahead, recorded.

- :class:`StepSampler`: one seeded permutation per epoch, concatenated into a global stream; step
  ``s`` takes positions ``[s*B, (s+1)*B)``, rank ``r`` the r-th contiguous slice of them. The
  position is a function of the step alone and the stream does not depend on the number of ranks.
- :func:`step_batches`: the collated micro-batches of the coming steps, built by DataLoader
  workers while the current step trains (``TrainConfig.data_workers``).
- :func:`data_position`: what a checkpoint records (sequences seen, epoch, offset in the epoch).
- :class:`DataOrderLog`: ``data_order/rank<R>.jsonl``, the indices each rank consumed per step.

Used by :mod:`~domainspec.common.train.loop`; the datasets are any ``Sequence`` of rows (a list, or
memory-mapped shards: :class:`~domainspec.common.data.shards.ShardDataset`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from domainspec.common.artifacts import read_jsonl_rows, write_jsonl

if TYPE_CHECKING:
    from domainspec.common.train.loop import _Plan


class StepSampler:
    """Deterministic data order: a seeded permutation per epoch, concatenated; step s takes
    positions [s*B, (s+1)*B) of that stream, rank r the r-th contiguous slice of them.
    The data position is therefore a function of the step alone, and the stream does not depend on
    the number of ranks: what resume, also on another number of ranks, needs."""

    def __init__(self, n: int, plan: "_Plan", micro: int, seed: int):
        self.n, self.plan, self.micro, self.seed = n, plan, micro, seed
        self._epoch, self._perm = -1, None

    def _index(self, pos: int) -> int:
        import torch
        epoch = pos // self.n
        if epoch != self._epoch:
            self._epoch = epoch
            # a tensor, not a list: 8 bytes per sequence (a list of Python ints costs ~36)
            self._perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + epoch))
        return int(self._perm[pos % self.n])

    def micro_batches(self, step: int) -> list[list[int]]:
        p = self.plan
        start = step * p.global_batch + p.rank * p.grad_accum * self.micro
        return [[self._index(start + j * self.micro + i) for i in range(self.micro)] for j in range(p.grad_accum)]


class _StepBatches:
    """Map-style: item k = (indices, collated micro-batches) of step ``start + k`` on this rank, so a
    DataLoader's workers can build the next steps while the current one trains."""

    def __init__(self, dataset: Sequence, collate, sampler: StepSampler, start: int, stop: int):
        self.dataset, self.collate, self.sampler, self.start, self.stop = dataset, collate, sampler, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, k: int):
        idx = self.sampler.micro_batches(self.start + k)
        return idx, [self.collate([self.dataset[i] for i in m]) for m in idx]


def step_batches(dataset: Sequence, collate, sampler: StepSampler, start: int, stop: int, workers: int,
                 prefetch: int):
    """(indices, micro-batches) for steps start..stop-1, in order; built ahead by ``workers`` processes."""
    steps = _StepBatches(dataset, collate, sampler, start, stop)
    if workers == 0 or len(steps) == 0:
        return (steps[k] for k in range(len(steps)))
    from torch.utils.data import DataLoader
    return iter(DataLoader(steps, batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=prefetch))


class DataOrderLog:
    """data_order/rank<R>.jsonl: one row per step, ``{"step": steps done, "ids": [dataset indices]}``;
    rows past the resume step are dropped (they are trained again)."""

    def __init__(self, out_dir: Path, rank: int, enabled: bool, resume_step: int):
        self.f = None
        if not enabled:
            return
        path = Path(out_dir) / "data_order" / f"rank{rank}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = []
        if resume_step and path.exists():
            keep = [r for r in read_jsonl_rows(path, tolerate_torn_tail=True) if r["step"] <= resume_step]
        write_jsonl(keep, path)
        self.f = path.open("a")

    def write(self, step: int, ids: list[list[int]]) -> None:
        if self.f is not None:
            self.f.write(json.dumps({"step": step, "ids": [int(i) for m in ids for i in m]}) + "\n")
            self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def data_position(samples_seen: int, n: int) -> dict[str, int]:
    """Where the global data stream stands after ``samples_seen`` sequences: rank-independent (every
    rank derives its slice of the next step from it), so it reshards to any number of ranks."""
    return {"samples_seen": samples_seen, "epoch": samples_seen // n, "epoch_offset": samples_seen % n}
