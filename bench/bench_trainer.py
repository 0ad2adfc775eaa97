"""Training throughput: domainspec's loop (trainer.train on DeepSpeed) vs a plain transformers Trainer.

    python bench/bench_trainer.py [--threads N] [--block 4] [--rounds 8] [--seq-len 256] [--micro 4] [--accum 2]

Both engines train the same tiny default Qwen2 model (``ModelConfig(name_or_path="tiny")``,
same initial weights) on the same packed rows (math corpus) batched by the same
``PackedCollator`` (per-document attention, ``sdpa_segments``, which the training load selects: both
sides do the same attention work), with the same micro batch, gradient accumulation, AdamW settings,
constant LR, clipping 1.0, logging interval and precision (fp32 on CPU, bf16 on a GPU).
Each side keeps its own optimizer implementation (the HF default is fused AdamW) and loss
code (HF: the model's ``ForCausalLMLoss``; ours: ``CausalLMObjective``); the run prints both.

Each engine runs in its own long-lived worker process (DeepSpeed's process group would
make the HF Trainer think it is distributed), paused at step boundaries: the parent lets
one worker run ``--block`` optimizer steps, then the other, alternating (A B A B ...), so
both see the same machine load over the run. Blocks before ``--warmup-blocks`` are left
out. Reported: the median tokens/s of each engine over its blocks, their ratio (ours / HF,
target >= 1.0), and the median of the per-round paired ratios (robust to load drift).
Both workers use the same intra-op thread count (``--threads``, default: the trainer's
CPU thread policy, :func:`domainspec.common.train.cpu_runtime.cpu_threads`). Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_TAG = "@@BENCH "  # protocol lines on the worker's stdout; anything else is library chatter


def _send(kind: str, **payload) -> None:
    print(_TAG + json.dumps({"kind": kind, **payload}), flush=True)


class _Pause:
    """Worker side: report the time since the last resume, then block until the parent says go."""

    def __init__(self):
        self.resumed: float | None = None
        self.resumed_cpu = 0.0
        self.steps = 0

    def __call__(self, steps_done: int, info: dict | None = None) -> None:
        import torch
        now, now_cpu = time.perf_counter(), time.process_time()
        if self.resumed is not None:
            _send("block", seconds=now - self.resumed, cpu_seconds=now_cpu - self.resumed_cpu,
                  steps=steps_done - self.steps, threads=torch.get_num_threads())
        else:
            _send("ready", threads=torch.get_num_threads(), **(info or {}))
        self.steps = steps_done
        if sys.stdin.readline().strip() != "go":
            os._exit(0)  # the parent is done with us: skip the rest of training and the final save
        self.resumed, self.resumed_cpu = time.perf_counter(), time.process_time()


def _rows(seq_len: int, n: int):
    from domainspec.common.recipes.cpt_data import build_cpt_examples
    from domainspec.common.models.loading import ModelConfig, load_model_and_tokenizer
    from domainspec.common.data.sources import DataSourceConfig
    model, tok = load_model_and_tokenizer(ModelConfig(), for_training=True)
    rows, _ = build_cpt_examples([DataSourceConfig(path="builtin:math_corpus", limit=4 * n)], tok, seq_len=seq_len)
    return model, tok, rows[:n]


def _describe_batch(batch) -> str:
    m = batch.get("attention_mask")
    mask = "no attention_mask" if m is None else f"attention_mask {tuple(m.shape)} {str(m.dtype).replace('torch.', '')}"
    return f"input_ids {tuple(batch['input_ids'].shape)}, {mask}"


def _optimizer_desc(opt) -> str:
    inner = getattr(opt, "optimizer", opt)  # DeepSpeed / accelerate wrappers
    d = inner.defaults
    impl = "fused" if d.get("fused") else "foreach" if d.get("foreach") else "single-tensor"
    return f"{type(inner).__name__} ({impl})"


def run_ours(args, out: Path, pause: _Pause) -> None:
    from domainspec.common.train.objectives import CausalLMObjective
    from domainspec.common.data.packing import PackedCollator
    from domainspec.common.train.loop import TrainConfig, train
    model, tok, rows = _rows(args.seq_len, args.rows)
    attn = model.config._attn_implementation
    inner = CausalLMObjective(attn, collator=PackedCollator(attn, pad_id=tok.pad_token_id))
    K, accum = args.block, args.accum

    class Paused:
        """The objective, pausing before the first micro-batch of every K-th step (after that step's collation)."""
        calls = 0

        def collate(self, rows_):
            return inner.collate(rows_)

        def num_targets(self, b):
            return inner.num_targets(b)

        def num_tokens(self, b):
            return inner.num_tokens(b)

        def loss(self, model_, batch):
            if self.calls % (K * accum) == 0:
                info = None
                if self.calls == 0:
                    info = {"what": f"domainspec train(): DeepSpeed ZeRO-0 engine, {_optimizer_desc(model_.optimizer)}, "
                                    f"{next(model_.parameters()).dtype}, attention {attn}, glibc memory "
                                    f"retained (trainer default on CPU), "
                                    f"CausalLMObjective loss, batch {_describe_batch(batch)}"}
                pause(self.calls // accum, info)
            self.calls += 1
            return inner.loss(model_, batch)

    cfg = TrainConfig(lr=1e-3, warmup_ratio=0.0, max_steps=args.total_steps, global_batch_size=args.micro * accum,
                      micro_batch_size=args.micro, log_every=args.log_every, save_every=0, progress=False)
    train(model, tok, rows, Paused(), cfg, out, resume=False)


def run_hf(args, out: Path, pause: _Pause) -> None:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from domainspec.common.data.packing import PackedCollator
    model, tok, rows = _rows(args.seq_len, args.rows)
    attn = model.config._attn_implementation
    collate = PackedCollator(attn, pad_id=tok.pad_token_id)

    class Gate(TrainerCallback):
        def on_train_begin(self, a, state, control, optimizer=None, **k):
            pause(0, {"what": f"transformers Trainer: {_optimizer_desc(optimizer)}, "
                              f"{next(model.parameters()).dtype}, attention {attn}, glibc memory "
                              f"{'retained (as ours)' if args.hf_retain_memory else 'trimmed (default)'}, "
                              f"model's own loss (labels in "
                              f"batch), batch {_describe_batch(collate(rows[:args.micro]))}"})

        def on_step_end(self, a, state, control, **k):
            if state.global_step % args.block == 0:
                pause(state.global_step)

    if args.hf_retain_memory:  # the allocator setting our trainer applies on CPU, for an equal footing
        from domainspec.common.train.cpu_runtime import retain_freed_memory
        retain_freed_memory()
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.micro, gradient_accumulation_steps=args.accum,
        max_steps=args.total_steps, learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0,
        adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, weight_decay=0.1, max_grad_norm=1.0,
        logging_steps=args.log_every, save_strategy="no", report_to=[], dataloader_num_workers=0,
        remove_unused_columns=False, disable_tqdm=True, seed=0, bf16=bf16, use_cpu=not torch.cuda.is_available())
    Trainer(model=model, args=targs, train_dataset=[r.to_dict() for r in rows], data_collator=collate,
            callbacks=[Gate()]).train()


def _default_threads() -> int:
    from domainspec.common.train.cpu_runtime import cpu_threads
    return cpu_threads()


class _Worker:
    def __init__(self, engine: str, argv: list[str], env: dict, tmp: Path):
        self.engine = engine
        self.err = (tmp / f"{engine}.stderr").open("w+")
        self.proc = subprocess.Popen([sys.executable, __file__, "--engine", engine, "--out", str(tmp / engine), *argv],
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, bufsize=1)

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(_TAG):
                return json.loads(line[len(_TAG):])
        self.err.seek(0)
        raise RuntimeError(f"{self.engine} worker exited ({self.proc.wait()}):\n{self.err.read()[-4000:]}")

    def go(self) -> dict:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, help="torch intra-op threads in both workers (default: trainer policy)")
    ap.add_argument("--block", type=int, default=4, help="optimizer steps per timed block")
    ap.add_argument("--rounds", type=int, default=8, help="timed A B rounds")
    ap.add_argument("--warmup-blocks", type=int, default=1, help="blocks per engine left out (warm-up)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--hf-retain-memory", action="store_true",
                    help="apply the trainer's glibc setting (retain_freed_memory) in the HF worker too")
    ap.add_argument("--swap", action="store_true", help="alternate which engine goes first (A B B A ...)")
    ap.add_argument("--log-every", type=int, default=10, help="metrics interval of both engines (steps)")
    ap.add_argument("--engine", choices=["ours", "hf"], help=argparse.SUPPRESS)  # worker mode
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--total-steps", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.engine:
        import torch
        torch.set_num_threads(args.threads)
        (run_ours if args.engine == "ours" else run_hf)(args, Path(args.out), _Pause())
        return 0

    threads = args.threads or _default_threads()
    blocks = args.warmup_blocks + args.rounds
    common = ["--threads", str(threads), "--block", str(args.block), "--seq-len", str(args.seq_len),
              "--micro", str(args.micro), "--accum", str(args.accum), "--rows", str(args.rows),
              "--log-every", str(args.log_every), "--total-steps", str((blocks + 1) * args.block)]
    common += ["--hf-retain-memory"] if args.hf_retain_memory else []
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # before torch starts, in both
    tokens_per_block = args.block * args.micro * args.accum * args.seq_len
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        workers = [_Worker(e, common, env, Path(tmp)) for e in ("ours", "hf")]
        try:
            for w in workers:
                info = w.read()
                print(f"{w.engine:4s}: {info['what']} | {info['threads']} threads")
            tps: dict[str, list[float]] = {"ours": [], "hf": []}
            cpu: dict[str, list[float]] = {"ours": [], "hf": []}
            for b in range(blocks):
                for w in (workers if b % 2 == 0 or not args.swap else workers[::-1]):  # A B A B (or A B B A)
                    r = w.go()
                    if r["steps"] != args.block or r["threads"] != threads:
                        raise RuntimeError(f"{w.engine}: block of {r['steps']} steps / {r['threads']} threads, "
                                           f"expected {args.block} / {threads}")
                    if b >= args.warmup_blocks:
                        tps[w.engine].append(tokens_per_block / r["seconds"])
                        cpu[w.engine].append(tokens_per_block / r["cpu_seconds"])
                if b >= args.warmup_blocks:
                    print(f"round {b - args.warmup_blocks + 1}: ours {tps['ours'][-1]:8.1f}  hf {tps['hf'][-1]:8.1f} "
                          f"tokens/s; per CPU-second ours {cpu['ours'][-1]:8.1f}  hf {cpu['hf'][-1]:8.1f}  "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            for w in workers:
                try:
                    w.stop()
                except Exception:
                    w.proc.kill()
    med = {k: statistics.median(v) for k, v in tps.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    paired = statistics.median(a / b for a, b in zip(tps["ours"], tps["hf"]))
    print(f"{args.rounds} rounds x {args.block} steps each, {threads} torch threads, "
          f"{args.micro * args.accum * args.seq_len} tokens/step (micro {args.micro} x accum {args.accum} x seq "
          f"{args.seq_len}), load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"median tokens/s: domainspec {med['ours']:.1f}, transformers Trainer {med['hf']:.1f}; "
          f"ratio {med['ours'] / med['hf']:.3f} (median of paired per-round ratios {paired:.3f}; target >= 1.0)")
    print(f"median tokens per CPU-second (process time, all threads; insensitive to waiting for a core): "
          f"domainspec {med_cpu['ours']:.1f}, transformers Trainer {med_cpu['hf']:.1f}; "
          f"ratio {med_cpu['ours'] / med_cpu['hf']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
