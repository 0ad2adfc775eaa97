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
the number of ranks. A checkpoint written by another number of ranks (``reshard=True``, the
default of ``train.reshard_on_resume``) resumes at the next unseen sequence on the new ranks:

- ZeRO-0 holds one full copy of weights and optimizer state in every rank's files: loaded as is.
- ZeRO-1/2/3 shard the optimizer state (and ZeRO-3 the weights) per rank: before the engine is
  built, rank 0 converts the checkpoint once with DeepSpeed's universal-checkpoint tool
  (``python -m deepspeed.checkpoint.ds_to_universal``) into ``step_N/universal/`` (written to a
  temporary folder, then renamed), and the engine is built with ``checkpoint.load_universal``,
  which re-partitions every parameter's fp32 weights and Adam moments over the new ranks.

A rank without a saved RNG state takes rank 0's (at a fresh start every rank seeds alike too).
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
UNIVERSAL_DIR = "universal"  # inside step_N: the checkpoint converted for another number of ranks


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

    def needs_universal(self, zero_stage: int, reshard: bool) -> bool:
        """Before the engine is built (collective): True when the newest checkpoint was written by another
        number of ranks under ZeRO-1/2/3, so the engine must load DeepSpeed's universal format
        (``checkpoint.load_universal``). Rank 0 converts it first, once (see the module docstring)."""
        found = self.latest()
        if found is None or not reshard:
            return False
        step, path = found
        state = json.loads((path / STATE_FILE).read_text())
        if state.get("world_size") == self.world_size or state.get("zero_stage") != zero_stage or zero_stage == 0:
            return False  # same ranks, ZeRO-0 (loads as is), or a stage mismatch load() reports
        if self.rank == 0 and not (path / UNIVERSAL_DIR).is_dir():
            convert_to_universal(path, path / UNIVERSAL_DIR)
        _barrier()
        if not (path / UNIVERSAL_DIR).is_dir():
            raise RuntimeError(f"{path}: rank 0 did not produce the universal checkpoint {path / UNIVERSAL_DIR}; "
                               f"see rank 0's log")
        return True

    def load(self, engine: Any, expect: dict[str, Any], reshard: bool = False,
             universal: bool = False) -> dict[str, Any] | None:
        """Restore the newest complete checkpoint into ``engine``; return its trainer state (None: fresh start).

        ``expect`` holds values that must match the checkpoint (e.g. ZeRO stage, global
        batch, dataset length); a mismatch raises with both values named. ``reshard``: accept
        a checkpoint of another world size; ``universal``: the engine was built to load the
        universal form that :meth:`needs_universal` prepared (see the module docstring).
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
        for key, value in expect.items():
            if state.get(key) != value:
                raise RuntimeError(f"{path}: cannot resume: {key} was {state.get(key)!r} in the checkpoint, "
                                   f"now {value!r}. Start fresh (--no-resume / a new output folder) or restore "
                                   f"the old setting.")
        if saved_world != self.world_size and not reshard:
            raise RuntimeError(
                f"{path}: checkpoint was written by {saved_world} ranks but this run has {self.world_size} and "
                f"train.reshard_on_resume is false. Set it true to continue at the next unseen sequence on "
                f"{self.world_size} ranks, resume with {saved_world} ranks, or start fresh "
                f"(--no-resume / a new output folder).")
        if saved_world != self.world_size and state.get("zero_stage", 0) != 0 and not universal:
            raise RuntimeError(f"{path}: a ZeRO-{state.get('zero_stage')} checkpoint of {saved_world} ranks needs "
                               f"the universal conversion on {self.world_size} ranks (Checkpointer.needs_universal "
                               f"before the engine is built)")
        tag = f"{path.name}/{UNIVERSAL_DIR}" if universal else path.name
        load_path, _ = engine.load_checkpoint(str(self.root), tag=tag, load_optimizer_states=True,
                                              load_lr_scheduler_states=True)
        if load_path is None:
            raise RuntimeError(f"{path}: DeepSpeed could not load this checkpoint")
        rng = path / f"rng_state_rank{self.rank}.pt"
        if not rng.exists() and saved_world != self.world_size:
            rng = path / "rng_state_rank0.pt"  # a rank the old run did not have
        set_rng_state(torch.load(rng, weights_only=False))
        if saved_world != self.world_size:
            log.info("resumed from %s (step %d) written by %d ranks on %d%s: data position resharded at sequence %d "
                     "of the global stream", path, step, saved_world, self.world_size,
                     " via DeepSpeed's universal checkpoint" if universal else "", state.get("samples_seen", -1))
        else:
            log.info("resumed from %s (step %d)", path, step)
        return state

    def load_warm_start(self, engine: Any, zero_stage: int) -> Path:
        """Start a new run from the newest checkpoint's weights and optimizer state (Adam moments and step
        count), without its LR schedule, RNG or data position: the next run of one optimizer over new data
        (GRPO's next generation batch). Needs the same ranks and ZeRO stage, since each rank loads its own
        optimizer shard. Returns the checkpoint folder."""
        found = self.latest()
        if found is None:
            raise RuntimeError(f"{self.root}: no complete checkpoint to warm-start the optimizer from")
        step, path = found
        state = json.loads((path / STATE_FILE).read_text())
        for key, want in (("world_size", self.world_size), ("zero_stage", zero_stage)):
            if state.get(key) != want:
                raise RuntimeError(f"{path}: cannot carry its optimizer state: {key} was {state.get(key)!r} "
                                   f"there, now {want!r}")
        load_path, _ = engine.load_checkpoint(str(self.root), tag=path.name, load_optimizer_states=True,
                                              load_lr_scheduler_states=False)
        if load_path is None:
            raise RuntimeError(f"{path}: DeepSpeed could not load this checkpoint")
        log.info("optimizer state carried over from %s (step %d of that run)", path, step)
        return path


def convert_to_universal(src: Path, dst: Path) -> Path:
    """Convert one DeepSpeed ZeRO checkpoint folder into DeepSpeed's universal format (per-parameter fp32
    weights and optimizer moments, loadable on any number of ranks), atomically: a temporary folder, then
    a rename. Runs DeepSpeed's own converter in a child process; its output is in the error on failure."""
    import subprocess
    import sys
    tmp = dst.with_name(dst.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    workers = str(max(1, min(8, os.cpu_count() or 1)))
    # --inject_missing_state: a plain HF model carries no Megatron universal_checkpoint_info; the converter
    # then records the default version, which is all a non-pipeline, non-tensor-parallel model needs
    cmd = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", str(src),
           "--output_folder", str(tmp), "--num_extract_workers", workers, "--num_merge_workers", workers,
           "--inject_missing_state"]
    log.info("converting %s to DeepSpeed's universal checkpoint for a different number of ranks", src)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"{src}: DeepSpeed's universal-checkpoint conversion failed (exit {r.returncode}): "
                           f"{(r.stderr or r.stdout)[-2000:]}\nResume with the original number of ranks, or "
                           f"start fresh (--no-resume / a new output folder).")
    os.rename(tmp, dst)
    return dst
