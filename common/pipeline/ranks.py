"""What the ranks of a stage share when a launcher runs it on N processes (torchrun, deepspeed, srun).

A stage under a launcher runs its whole ``run`` on every rank (``stage_exec``). Training steps are
collective already (``common/train/loop.py``), sampling is data-parallel (``eval/generate.py``); the
rest of a stage is one of three things, each a function here:

* work done once, by rank 0, whose result every rank needs (building a data mix, reading problem
  files): :func:`on_rank0` runs it on rank 0 and broadcasts the result (or rank 0's error);
* cheap per-item work split across ranks (grading, reward-model scoring): :func:`split_map`;
* files and markers only rank 0 writes, followed by :func:`barrier` before any rank reads them.

With one process (no launcher) every function is a plain call, so single-process runs are unchanged.
Imports torch only when a process group of more than one rank is up.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _group():
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


def rank_world() -> tuple[int, int]:
    """(rank, world size): the process group's when one is up, else 1 process (rank 0 of 1)."""
    dist = _group()
    return (dist.get_rank(), dist.get_world_size()) if dist is not None else (0, 1)


def is_rank0() -> bool:
    return rank_world()[0] == 0


def start_ranks() -> tuple[int, int]:
    """Join the launcher's process group when the environment names more than one rank (``WORLD_SIZE``);
    returns (rank, world). A plain process stays alone (the training loop makes its own group of one)."""
    if _group() is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from domainspec.common.train.loop import init_distributed
        init_distributed()
    return rank_world()


def barrier() -> None:
    """Wait for every rank (after rank 0 wrote files the others read next)."""
    if (dist := _group()) is not None and dist.get_world_size() > 1:
        dist.barrier()


def on_rank0(fn: Callable[[], T], failed: str = "rank 0 failed", error: type[Exception] = RuntimeError) -> T:
    """``fn()`` run on rank 0 only; every rank returns its (picklable) result. When it raises on rank 0
    the other ranks raise too (``error(f"{failed}: {rank 0's error}")``) instead of waiting forever."""
    rank, world = rank_world()
    if world == 1:
        return fn()
    dist = _group()
    box: list = [None]
    if rank == 0:
        try:
            box[0] = ("ok", fn())
        except BaseException as e:
            dist.broadcast_object_list([("error", f"{type(e).__name__}: {e}")], src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise error(f"{failed}: {value}")
    return value


def sum_over_ranks(n: int) -> int:
    """``n`` summed over the ranks (every rank must call it)."""
    return sum(gather(n))


def gather(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (every rank must call it)."""
    world = rank_world()[1]
    if world == 1:
        return [obj]
    parts: list = [None] * world
    _group().all_gather_object(parts, obj)
    return parts


def split_map(items: Sequence[T], fn: Callable[[list[T]], list[R]]) -> list[R]:
    """``fn(items)`` computed across ranks: rank r maps ``items[r::world]`` (fn returns one result per
    item, in order); every rank returns all results in the order of ``items``. Every rank must call it
    with the same items."""
    rank, world = rank_world()
    if world == 1:
        return list(fn(list(items)))
    mine = list(fn(list(items[rank::world])))
    if len(mine) != len(items[rank::world]):
        raise ValueError(f"split_map: {len(mine)} results for {len(items[rank::world])} items on rank {rank}")
    parts = gather(mine)
    out: list = [None] * len(items)
    for r, part in enumerate(parts):
        out[r::world] = part
    return out
