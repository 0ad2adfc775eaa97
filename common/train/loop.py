"""The one training loop (CPT, SFT, reward model), built directly on ``deepspeed.initialize``.

Usage::

    result = train(model, tokenizer, dataset, CausalLMObjective("sdpa"), TrainConfig(lr=1e-3, max_steps=100), "out")
    # single process: python script.py;  N GPUs: deepspeed --num_gpus N script.py (or torchrun)

Each step: LR from :mod:`~domainspec.common.train.schedules` -> this rank's micro-batches from a
seeded, resumable sampler -> ``objective.loss`` -> backward / ``engine.step`` -> maybe a
checkpoint -> log. Micro-batches are weighted by their number of targets
(:mod:`~domainspec.common.train.objectives`), so the loss is the mean over every target token of
the step whatever the split into micro-batches and ranks.

ZeRO stage 0 (plain data parallel) by default; stage 2 ships with ``overlap_comm`` off
(DeepSpeed has a history of silent wrong-gradient bugs with it on); stage 3 gathers 16-bit
weights on save, else the saved HF weights come out empty. CPU runs use the gloo backend
and fp32. Outputs in ``out_dir``: ``metrics.jsonl`` (see :mod:`~domainspec.common.train.metrics_log`),
``checkpoints/`` (see :mod:`~domainspec.common.train.checkpoint`), ``final/`` (an HF folder:
``save_pretrained`` weights + tokenizer), ``train_config.yaml``.

Not here: data loading/packing (common/data/packing.py), model loading (common/models/loading.py),
evaluation during training.
"""
from __future__ import annotations

import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field, model_validator

from domainspec.common.artifacts import read_jsonl_rows
from domainspec.common.config import Config
from domainspec.common.train.data_stream import DataOrderLog, StepSampler, data_position, step_batches  # noqa: F401
from domainspec.common.train.schedules import ScheduleKind, lr_lambda

log = logging.getLogger(__name__)


class TrainConfig(Config):
    lr: float = Field(3e-5, gt=0, description="Peak learning rate. 3e-5 is the Qwen2.5 continued-pretraining "
                      "value for 7B models (issue #3); tiny CPU runs need ~1e-3.")
    schedule: ScheduleKind = Field("constant", description="LR schedule: 'constant' (linear warmup then constant, "
                                   "no decay: Qwen2.5-Coder/Math CPT), 'cosine_ramp_constant' (cosine ramp to the "
                                   "peak then constant: Qwen2.5-Coder SFT), 'cosine' (warmup then cosine decay).")
    warmup_ratio: float = Field(0.03, ge=0, le=1, description="Fraction of the steps spent warming up (3%: "
                                "Qwen2.5-Coder/Math CPT).")
    warmup_steps: int | None = Field(None, ge=0, description="Warmup length in steps; overrides warmup_ratio.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Final LR as a fraction of the peak ('cosine' only).")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW (beta1, beta2); 0.9/0.95 per Qwen2.5 CPT.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon; 1e-8 per Qwen2.5 CPT.")
    weight_decay: float = Field(0.1, ge=0, description="Decoupled weight decay on matrices (not on biases/norms); "
                                "0.1 as in Qwen2/LLaMA-style pretraining.")
    grad_clip: float = Field(1.0, ge=0, description="Clip the global gradient norm to this (0 = off); 1.0 per Qwen2.5.")
    max_steps: int | None = Field(None, ge=1, description="Optimizer steps to run; overrides epochs when set.")
    epochs: float = Field(1.0, gt=0, description="Passes over the dataset when max_steps is not set "
                          "(steps = ceil(epochs * rows / global batch)).")
    global_batch_size: int = Field(8, ge=1, description="Sequences per optimizer step over all ranks.")
    global_batch_tokens: int | None = Field(None, ge=1, description="Tokens per optimizer step; when set, "
                                            "overrides global_batch_size (= tokens / row length; rows must have "
                                            "one length, as packed rows do).")
    micro_batch_size: int = Field(1, ge=1, description="Sequences per forward pass per rank; gradient accumulation "
                                  "steps = global batch / (micro_batch_size x world size).")
    save_every: int = Field(500, ge=0, description="Write a checkpoint every N steps (0 = none besides final/).")
    keep_last: int = Field(2, ge=1, description="Keep only the newest K checkpoints.")
    log_every: int = Field(10, ge=1, description="Write a metrics.jsonl row every N steps (and at the last step).")
    seed: int = Field(0, description="Seed for python/numpy/torch RNGs and the data order.")
    zero_stage: Literal[0, 1, 2, 3] = Field(0, description="DeepSpeed ZeRO stage: 0 = plain data parallel "
                                            "(single process), 2 = shard optimizer state and gradients "
                                            "(overlap_comm off), 3 = also shard parameters.")
    offload_optimizer: bool = Field(False, description="ZeRO-Offload: keep optimizer state on the CPU "
                                    "(zero_stage >= 1; uses DeepSpeed's CPU Adam).")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="'auto': bf16 on GPUs that support it, "
                                                       "fp32 otherwise (CPU).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory.")
    data_workers: int = Field(0, ge=0, description="DataLoader worker processes per rank that read and collate the "
                              "next steps' micro-batches while this one trains (0 = in the training process).")
    prefetch_steps: int = Field(2, ge=1, description="Steps of micro-batches each data worker prepares ahead.")
    reshard_on_resume: bool = Field(True, description="Resume a checkpoint written by a different number of "
                                    "ranks. The data position is global (sequences seen), so the new ranks continue "
                                    "at the next unseen sequence; ZeRO-1/2/3 checkpoints are first converted once "
                                    "with DeepSpeed's universal-checkpoint tool (common/train/checkpoint.py); ranks "
                                    "without a saved RNG state take rank 0's. false: refuse another rank count.")
    record_data_order: bool = Field(False, description="Write data_order/rank<R>.jsonl: the dataset indices each "
                                    "rank consumed at each step (an audit of what the model saw).")
    progress: bool = Field(True, description="Show a tqdm progress bar on rank 0.")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.offload_optimizer and self.zero_stage == 0:
            raise ValueError("offload_optimizer needs zero_stage >= 1 (ZeRO-Offload)")
        return self


@dataclass
class TrainResult:
    out_dir: Path
    final_dir: Path
    steps: int
    final_loss: float | None
    metrics_path: Path
    resumed_from: int | None


@dataclass(frozen=True)
class _Plan:
    world_size: int
    rank: int
    seq_len: int
    global_batch: int
    grad_accum: int
    total_steps: int


def _import_deepspeed():
    try:
        import deepspeed
    except Exception as e:  # ImportError, or a broken native build on this platform
        raise RuntimeError(f"the training loop is built on deepspeed.initialize and deepspeed cannot be used "
                           f"here: {type(e).__name__}: {e}. Install a deepspeed build for this platform.") from e
    return deepspeed


def _skip_shm_kernel_build() -> None:
    """DeepSpeed's CPU process group JIT-builds a shared-memory all-reduce kernel with g++ the first time on a
    machine (65 s measured on the 2-core CI machine, paid by the first stage of a fresh run). Only its
    tensor-parallel inference all-reduce uses that kernel; training reduces through torch.distributed (gloo),
    so the build is skipped: the backend then runs without it, as it does where the kernel is unsupported."""
    import importlib
    # by module path: the attribute deepspeed.comm.torch is the torch package, which deepspeed.comm re-exports
    ds_comm_torch = importlib.import_module("deepspeed.comm.torch")
    if hasattr(ds_comm_torch, "build_shm_op"):
        ds_comm_torch.build_shm_op = lambda: None


def init_distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world) from the launcher's env (deepspeed/torchrun), or a 1-process group.
    Idempotent; ``train`` calls it, callers that need ranks before training (data building) may too."""
    import torch
    import torch.distributed as dist
    deepspeed = _import_deepspeed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if "RANK" not in os.environ:  # plain `python ...`: a process group of one
        os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
    if os.environ.get("WORLD_SIZE") == "1" and not dist.is_initialized():
        # one rank needs no rendezvous: an in-memory store, so no TCP port to pick (and no race with other
        # processes on this host for it)
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    if not torch.cuda.is_available():
        _skip_shm_kernel_build()
    deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return int(os.environ["RANK"]), local_rank, int(os.environ["WORLD_SIZE"])


def _plan(cfg: TrainConfig, dataset: Sequence, objective, rank: int, world: int) -> _Plan:
    if len(dataset) == 0:
        raise ValueError("the training dataset is empty")
    seq_len = objective.num_tokens(objective.collate([dataset[0]]))  # tokens in one row
    gb = cfg.global_batch_size
    if cfg.global_batch_tokens is not None:
        if cfg.global_batch_tokens % seq_len:
            raise ValueError(f"global_batch_tokens={cfg.global_batch_tokens} is not a multiple of the row length "
                             f"{seq_len}")
        gb = cfg.global_batch_tokens // seq_len
    per_pass = cfg.micro_batch_size * world
    if gb % per_pass:
        raise ValueError(f"global batch {gb} sequences is not divisible by micro_batch_size "
                         f"{cfg.micro_batch_size} x world size {world} = {per_pass}")
    steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * len(dataset) / gb))
    return _Plan(world, rank, seq_len, gb, gb // per_pass, steps)


def _resolve_bf16(precision: str) -> bool:
    import torch
    if precision == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if precision == "bf16" and not torch.cuda.is_available():
        log.warning("precision=bf16 on CPU: DeepSpeed's CPU bf16 path is slow and untested here")
    return precision == "bf16"


def deepspeed_config(cfg: TrainConfig, plan: _Plan, bf16: bool, load_universal: bool = False) -> dict[str, Any]:
    zero: dict[str, Any] = {"stage": cfg.zero_stage}
    if cfg.zero_stage >= 1:
        zero.update(overlap_comm=False, contiguous_gradients=True)
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if cfg.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    ds = {"train_batch_size": plan.global_batch, "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
          "gradient_accumulation_steps": plan.grad_accum,
          # ZeRO-0 fp32: the loop clips (DeepSpeed would compute the norm a second time and discard it)
          "gradient_clipping": 0.0 if _loop_clips(cfg, bf16) else cfg.grad_clip,
          "zero_optimization": zero, "bf16": {"enabled": bf16}, "zero_allow_untested_optimizer": True,
          "steps_per_print": 2**62, "wall_clock_breakdown": False}
    if load_universal:  # resuming another rank count's ZeRO-1/2/3 checkpoint (common/train/checkpoint.py)
        ds["checkpoint"] = {"load_universal": True}
    if cfg.offload_optimizer:  # ZeRO-Offload requires DeepSpeed's own (CPU) Adam
        ds["optimizer"] = {"type": "AdamW", "params": {"lr": cfg.lr, "betas": list(cfg.betas), "eps": cfg.eps,
                                                       "weight_decay": cfg.weight_decay}}
    return ds


def _param_groups(model, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)  # biases and norm gains are not decayed
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _build_engine(deepspeed, model, cfg: TrainConfig, plan: _Plan, bf16: bool, load_universal: bool = False):
    import torch
    groups = _param_groups(model, cfg.weight_decay)
    schedule = lr_lambda(cfg.schedule, plan.total_steps, cfg.warmup_ratio, cfg.warmup_steps, cfg.min_lr_ratio)
    # ZeRO-Offload builds DeepSpeed's CPU AdamW from the config; otherwise torch's fused AdamW (one kernel
    # over all tensors, as the HF Trainer's default; ~3x faster than the per-tensor loop on CPU, same
    # update up to float rounding)
    optimizer = None if cfg.offload_optimizer else torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                                                     fused=True)
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=optimizer, model_parameters=groups if optimizer is None else None,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule),  # called with the inner optimizer
        config=deepspeed_config(cfg, plan, bf16, load_universal))
    if plan.world_size == 1 and cfg.zero_stage == 0:
        # nothing to average over: skip DeepSpeed's flatten / all-reduce / copy-back of every gradient
        engine.enable_backward_allreduce = False
    return engine


def _loop_clips(cfg: TrainConfig, bf16: bool) -> bool:
    return cfg.zero_stage == 0 and not bf16


def _clip_grad_norm(engine, max_norm: float):
    """Pre-clip global norm of the (already all-reduced) gradients; clips in place when max_norm > 0."""
    import torch
    params = [p for p in engine.module.parameters() if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))


def _all_reduce_sum(values: list[float], device) -> list[float]:
    import torch
    import torch.distributed as dist
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return values  # one rank: no device round trip (a host sync on an accelerator)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def _to_device(batch: dict, device) -> dict:
    return {k: (v.to(device, non_blocking=True) if hasattr(v, "to") else v) for k, v in batch.items()}


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(model, tokenizer, dataset: Sequence, objective, cfg: TrainConfig, out_dir: str | Path,
          resume: bool = True, warm_start: str | Path | None = None) -> TrainResult:
    """Train ``model`` on ``dataset`` (a sequence of row dicts) with ``objective``; see the module docstring.

    ``warm_start``: the ``checkpoints`` folder of an earlier run whose newest checkpoint's weights and
    optimizer state a fresh start (nothing to resume here) begins from, with a new LR schedule and data
    position (:meth:`~domainspec.common.train.checkpoint.Checkpointer.load_warm_start`).

    On CPU, torch's intra-op threads follow :func:`~domainspec.common.train.cpu_runtime.cpu_threads` for the
    run (restored afterwards) and :func:`~domainspec.common.train.cpu_runtime.retain_freed_memory` applies to
    the process."""
    import torch
    from domainspec.common.train.cpu_runtime import cpu_threads, retain_freed_memory
    before = torch.get_num_threads()
    if not torch.cuda.is_available():
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE") or os.environ.get("LOCAL_SIZE") or
                          os.environ.get("WORLD_SIZE") or 1)
        threads = cpu_threads(local_world, current=before)
        if threads != before:
            log.info("CPU training: %d torch threads (was %d; machine load and ranks per machine, see cpu_threads; "
                     "OMP_NUM_THREADS overrides)", threads, before)
            torch.set_num_threads(threads)
        if not retain_freed_memory():
            log.info("CPU training: not on glibc, freed memory goes back to the OS as the allocator decides")
    try:
        return _train(model, tokenizer, dataset, objective, cfg, out_dir, resume, warm_start)
    finally:
        torch.set_num_threads(before)


def _train(model, tokenizer, dataset: Sequence, objective, cfg: TrainConfig, out_dir: Path | str,
           resume: bool, warm_start: str | Path | None = None) -> TrainResult:
    import torch
    from tqdm.auto import tqdm

    from domainspec.common.train.checkpoint import Checkpointer
    from domainspec.common.train.flops import model_flops_per_token, peak_flops
    from domainspec.common.train.metrics_log import MetricsLog

    deepspeed = _import_deepspeed()
    out_dir = Path(out_dir)
    rank, _, world = init_distributed()
    plan = _plan(cfg, dataset, objective, rank, world)
    bf16 = _resolve_bf16(cfg.precision)
    _seed_everything(cfg.seed)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    flops_tok = model_flops_per_token(model, plan.seq_len)  # before ZeRO-3 partitions the parameters
    peak = peak_flops()
    ckpt = Checkpointer(out_dir / "checkpoints", cfg.keep_last, rank, world)
    universal = resume and ckpt.needs_universal(cfg.zero_stage, cfg.reshard_on_resume)
    engine = _build_engine(deepspeed, model, cfg, plan, bf16, universal)
    data_state = {"zero_stage": cfg.zero_stage, "global_batch": plan.global_batch, "dataset_len": len(dataset),
                  "seed": cfg.seed}
    if getattr(dataset, "fingerprint", None):  # prepared shards: resume only on the same data
        data_state["dataset_fingerprint"] = dataset.fingerprint
    state = ckpt.load(engine, expect=data_state, reshard=cfg.reshard_on_resume, universal=universal) \
        if resume else None
    if state is None and warm_start is not None:
        Checkpointer(warm_start, cfg.keep_last, rank, world).load_warm_start(engine, cfg.zero_stage)
    start = state["step"] if state else 0
    sampler = StepSampler(len(dataset), plan, cfg.micro_batch_size, cfg.seed)
    metrics_log = MetricsLog(out_dir, enabled=rank == 0, resume_step=start)
    order_log = DataOrderLog(out_dir, rank, cfg.record_data_order, start)
    if rank == 0:
        cfg.save_resolved(out_dir, "train_config.yaml")
        attn = getattr(getattr(model, "config", None), "_attn_implementation", "n/a")
        log.info("training: %d steps (from %d) | world size %d | ZeRO-%d%s | %s | attention %s | global batch %d seq "
                 "= %d tokens/step | micro batch %d | grad accum %d | row length %d | %s",
                 plan.total_steps, start, world, cfg.zero_stage, " + CPU offload" if cfg.offload_optimizer else "",
                 "bf16" if bf16 else "fp32", attn, plan.global_batch, plan.global_batch * plan.seq_len,
                 cfg.micro_batch_size, plan.grad_accum, plan.seq_len,
                 f"{flops_tok:.3g} FLOPs/token" + (f", peak {peak:.3g} FLOP/s/device" if peak else ", MFU n/a"))
    bar = tqdm(total=plan.total_steps, initial=start, desc="train", disable=rank != 0 or not cfg.progress,
               dynamic_ncols=True)
    engine.train()
    loss_value, window_tokens, window_start = None, 0, time.perf_counter()
    loader = step_batches(dataset, objective.collate, sampler, start, plan.total_steps, cfg.data_workers,
                          cfg.prefetch_steps)
    for step, (indices, batches) in zip(range(start, plan.total_steps), loader):
        lr = engine.get_lr()[0]  # the LR this update uses (the scheduler stepped after the previous one)
        order_log.write(step + 1, indices)
        counts = [objective.num_targets(b) for b in batches]
        total_targets = _all_reduce_sum([float(sum(counts))], engine.device)[0]
        loss_sum, metric_sums, grad_norm = torch.zeros((), device=engine.device), {}, None
        for b, n in zip(batches, counts):
            b = _to_device(b, engine.device)
            loss, metrics = objective.loss(engine, b)
            # weight by targets (DeepSpeed averages over ranks: x world undoes it; no 1/grad_accum scaling)
            engine.backward(loss * (n * world / max(total_targets, 1.0)), scale_wrt_gas=False)
            if engine.is_gradient_accumulation_boundary() and _loop_clips(cfg, bf16):
                grad_norm = _clip_grad_norm(engine, cfg.grad_clip)
            engine.step()
            loss_sum += loss.detach().float() * n  # a tensor: no device sync per micro-batch
            for k, v in metrics.items():
                metric_sums[k] = metric_sums.get(k, 0.0) + float(v) * n
            window_tokens += objective.num_tokens(b)
        if grad_norm is None:
            grad_norm = engine.get_global_grad_norm()
        done = step + 1
        # the last step is checkpointed too, so resuming a finished run trains nothing
        if cfg.save_every and (done % cfg.save_every == 0 or done == plan.total_steps):
            ckpt.save(engine, done, data_state | data_position(done * plan.global_batch, len(dataset)))
        if done % cfg.log_every == 0 or done == plan.total_steps:
            keys = sorted(metric_sums)
            sums = _all_reduce_sum([float(loss_sum), float(window_tokens)] + [metric_sums[k] for k in keys], engine.device)
            loss_value = sums[0] / max(total_targets, 1.0)
            elapsed = time.perf_counter() - window_start
            tps = sums[1] / elapsed if elapsed > 0 else float("nan")
            row = {"step": done, "loss": loss_value, "lr": lr,
                   "grad_norm": float(grad_norm) if grad_norm is not None else None,
                   "tokens_per_second": tps, "mfu": flops_tok * tps / (peak * world) if peak else None}
            row.update({k: s / max(total_targets, 1.0) for k, s in zip(keys, sums[2:])})
            metrics_log.write(row)
            bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
            window_tokens, window_start = 0, time.perf_counter()
        bar.update(1)
    bar.close()
    metrics_log.close()
    order_log.close()
    if loss_value is None and rank == 0 and metrics_log.path.exists():  # resumed a finished run
        rows = read_jsonl_rows(metrics_log.path, tolerate_torn_tail=True)
        loss_value = rows[-1]["loss"] if rows else None
    final = save_final(engine, tokenizer, out_dir / "final", cfg.zero_stage, rank)
    return TrainResult(out_dir, final, plan.total_steps, loss_value, metrics_log.path, start if state else None)


def save_final(engine, tokenizer, final: Path, zero_stage: int, rank: int) -> Path:
    """Write the trained weights as a Hugging Face folder (atomically: tmp folder, then rename)."""
    import torch.distributed as dist
    # collective under ZeRO-3 (every rank joins the gather); a plain state_dict otherwise
    state_dict = engine._zero3_consolidated_16bit_state_dict() if zero_stage == 3 else None
    if rank == 0:
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        engine.module.save_pretrained(tmp, state_dict=state_dict)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(tmp, final)
        log.info("final weights: %s", final)
    if dist.is_initialized():
        dist.barrier()
    return final
