"""Atomic, resumable training checkpoints around DeepSpeed's ``save_checkpoint``.

Layout under ``<out_dir>/checkpoints``::

    step_000200/            one complete checkpoint (DeepSpeed's model/optimizer/scheduler
      mp_rank_00_model_states.pt, ...   files, ZeRO shards when sharded)
      rng_state_rank0.pt    python/numpy/torch(/cuda) RNG of each rank
      trainer_state.json    step, data position, world size, ZeRO stage (written last)
    tmp-step_000300/        a checkpoint being written; never read, removed on resume

Atomicity: every rank writes into ``tmp-step_N``; after a barrier rank 0 writes
``trainer_state.json`` and renames the folder to ``step_N`` (one ``os.rename`` on one
filesystem), then deletes all but the newest ``keep_last``. A kill at any point leaves
either the previous set of complete checkpoints or the new one. Assumes the output
folder is on a filesystem every rank sees (shared storage on multi-node runs).

The data position (``samples_seen``, ``epoch``, ``epoch_offset``) is a count over one global
stream that every rank slices by its rank (``StepSampler`` in loop.py), so it does not depend on
the number of ranks. Resuming on a different world size is therefore possible under ZeRO-0
(one full copy of weights and optimizer state) with ``reshard=True``: the new ranks continue at
the next unseen sequence, and a rank without a saved RNG state takes rank 0's (at a fresh start
every rank seeds alike too). Otherwise it is refused: ZeRO-1/2/3 shards are per rank and this
module does not convert them (DeepSpeed's universal checkpoint would).
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_STEP_DIR = re.compile(r"^step_(\d+)$")
STATE_FILE = "trainer_state.json"


def _barrier() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def list_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


class Checkpointer:
    """Save/restore engine + RNG + data position; ``keep_last`` newest checkpoints are kept."""

    def __init__(self, root: str | Path, keep_last: int, rank: int, world_size: int):
        self.root = Path(root)
        self.keep_last = keep_last
        self.rank = rank
        self.world_size = world_size

    def save(self, engine: Any, step: int, state: dict[str, Any]) -> Path:
        """Collective: every rank must call it. Returns the final checkpoint folder."""
        import torch
        tag = f"step_{step:06d}"
        tmp_tag = f"tmp-{tag}"
        tmp = self.root / tmp_tag
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)  # leftover of a run killed while saving
            self.root.mkdir(parents=True, exist_ok=True)
        _barrier()
        engine.save_checkpoint(str(self.root), tag=tmp_tag, save_latest=False)
        torch.save(rng_state(), tmp / f"rng_state_rank{self.rank}.pt")
        _barrier()
        final = self.root / tag
        if self.rank == 0:
            full = {**state, "step": step, "world_size": self.world_size}
            (tmp / STATE_FILE).write_text(json.dumps(full, indent=2))
            shutil.rmtree(final, ignore_errors=True)
            os.rename(tmp, final)  # the commit point
            for _, old in list_checkpoints(self.root)[:-self.keep_last] if self.keep_last > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        _barrier()
        return final

    def latest(self) -> tuple[int, Path] | None:
        found = list_checkpoints(self.root)
        return found[-1] if found else None

    def load(self, engine: Any, expect: dict[str, Any], reshard: bool = False) -> dict[str, Any] | None:
        """Restore the newest complete checkpoint into ``engine``; return its trainer state (None: fresh start).

        ``expect`` holds values that must match the checkpoint (e.g. ZeRO stage, global
        batch, dataset length); a mismatch raises with both values named. ``reshard``: accept
        a checkpoint of another world size (the caller guarantees ZeRO-0; see the module docstring).
        """
        import torch
        if self.rank == 0 and self.root.is_dir():
            for p in self.root.glob("tmp-step_*"):
                shutil.rmtree(p, ignore_errors=True)
        _barrier()
        found = self.latest()
        if found is None:
            return None
        step, path = found
        state = json.loads((path / STATE_FILE).read_text())
        saved_world = state.get("world_size")
        if saved_world != self.world_size and not (reshard and state.get("zero_stage") == 0):
            raise RuntimeError(
                f"{path}: checkpoint was written by {saved_world} ranks but this run has "
                f"{self.world_size}; under ZeRO-0 set train.reshard_on_resume=true to continue at the next unseen "
                f"sequence on {self.world_size} ranks; ZeRO-1/2/3 shards need DeepSpeed's universal checkpoint, "
                f"which domainspec does not support. Resume with {saved_world} ranks, or start fresh "
                f"(--no-resume / a new output folder).")
        for key, value in expect.items():
            if state.get(key) != value:
                raise RuntimeError(f"{path}: cannot resume: {key} was {state.get(key)!r} in the checkpoint, "
                                   f"now {value!r}. Start fresh (--no-resume / a new output folder) or restore "
                                   f"the old setting.")
        load_path, _ = engine.load_checkpoint(str(self.root), tag=path.name, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if load_path is None:
            raise RuntimeError(f"{path}: DeepSpeed could not load this checkpoint")
        rng = path / f"rng_state_rank{self.rank}.pt"
        if not rng.exists() and saved_world != self.world_size:
            rng = path / "rng_state_rank0.pt"  # a rank the old run did not have
        set_rng_state(torch.load(rng, weights_only=False))
        if saved_world != self.world_size:
            log.info("resumed from %s (step %d) written by %d ranks on %d: data position resharded at sequence %d "
                     "of the global stream", path, step, saved_world, self.world_size, state.get("samples_seen", -1))
        else:
            log.info("resumed from %s (step %d)", path, step)
        return state
