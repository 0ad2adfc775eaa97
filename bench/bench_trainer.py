"""Training throughput: domainspec's loop (trainer.train on DeepSpeed) vs a plain transformers Trainer.

    python bench/bench_trainer.py [--steps 30] [--seq-len 256] [--repeats 2]

Both train the same tiny default Qwen2 model (``ModelConfig(name_or_path="tiny")``) on the
same packed rows (math corpus, ``PackedCollator`` batches with the block-causal mask), same
micro batch, gradient accumulation, AdamW settings and constant LR, fp32 on CPU / bf16 on a
GPU. Each engine runs in its own process (the DeepSpeed process group would make the HF
Trainer think it is distributed); the figure is the median per-step tokens/s after the first
``--skip`` steps, best of ``--repeats`` alternating runs (the machine may be shared).
Prints one line per run and the ratio ours / HF (target >= 1.0). Not a test.
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


def _rows(seq_len: int, n: int):
    from domainspec.common.cpt_data import build_cpt_examples
    from domainspec.common.modeling import ModelConfig, load_model_and_tokenizer
    from domainspec.common.sources import DataSourceConfig
    model, tok = load_model_and_tokenizer(ModelConfig(), for_training=True)
    rows, _ = build_cpt_examples([DataSourceConfig(path="builtin:math_corpus", limit=4 * n)], tok, seq_len=seq_len)
    return model, tok, rows[:n]


def run_ours(args, out: Path) -> list[float]:
    from domainspec.common.objectives import CausalLMObjective
    from domainspec.common.packing import PackedCollator
    from domainspec.common.trainer import TrainConfig, train
    model, tok, rows = _rows(args.seq_len, args.rows)
    attn = model.config._attn_implementation
    cfg = TrainConfig(lr=1e-3, warmup_ratio=0.0, max_steps=args.steps, global_batch_size=args.micro * args.accum,
                      micro_batch_size=args.micro, log_every=1, save_every=0, progress=False)
    train(model, tok, rows, CausalLMObjective(attn, collator=PackedCollator(attn, pad_id=tok.pad_token_id)), cfg, out)
    return [json.loads(line)["tokens_per_second"] for line in (out / "metrics.jsonl").read_text().splitlines()]


def run_hf(args, out: Path) -> list[float]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from domainspec.common.packing import PackedCollator
    model, tok, rows = _rows(args.seq_len, args.rows)
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            if not stamps:
                stamps.append(time.perf_counter())

        def on_step_end(self, *a, **k):
            stamps.append(time.perf_counter())

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    targs = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=args.micro, gradient_accumulation_steps=args.accum,
        max_steps=args.steps, learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, adam_beta1=0.9,
        adam_beta2=0.95, adam_epsilon=1e-8, weight_decay=0.1, max_grad_norm=1.0, logging_steps=10**6,
        save_strategy="no", report_to=[], dataloader_num_workers=0, remove_unused_columns=False,
        disable_tqdm=True, seed=0, bf16=bf16, use_cpu=not torch.cuda.is_available())
    collate = PackedCollator(model.config._attn_implementation, pad_id=tok.pad_token_id)
    Trainer(model=model, args=targs, train_dataset=[r.to_dict() for r in rows], data_collator=collate,
            callbacks=[Clock()]).train()
    tokens = args.micro * args.accum * args.seq_len
    return [tokens / (b - a) for a, b in zip(stamps, stamps[1:])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--skip", type=int, default=5, help="first steps left out of the median (warm-up)")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--micro", type=int, default=4)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--engine", choices=["ours", "hf"], help=argparse.SUPPRESS)  # child process mode
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.engine:
        tps = (run_ours if args.engine == "ours" else run_hf)(args, Path(args.out))
        print("RESULT " + json.dumps(tps))
        return 0
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    best: dict[str, float] = {}
    common = ["--steps", str(args.steps), "--seq-len", str(args.seq_len), "--micro", str(args.micro),
              "--accum", str(args.accum), "--rows", str(args.rows)]
    for rep in range(args.repeats):
        for engine in ("ours", "hf"):
            with tempfile.TemporaryDirectory() as tmp:
                r = subprocess.run([sys.executable, __file__, "--engine", engine, "--out", tmp, *common], env=env,
                                   capture_output=True, text=True)
            line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if r.returncode or line is None:
                print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
                return 1
            tps = json.loads(line[7:])[args.skip:]
            med = statistics.median(tps)
            best[engine] = max(best.get(engine, 0.0), med)
            print(f"run {rep + 1} {engine:4s}: median {med:9.1f} tokens/s over {len(tps)} steps")
    print(f"tokens per step {args.micro * args.accum * args.seq_len} (micro {args.micro} x accum {args.accum} x "
          f"seq {args.seq_len}); best median tokens/s: domainspec {best['ours']:.1f}, transformers Trainer "
          f"{best['hf']:.1f}; ratio {best['ours'] / best['hf']:.3f} (target >= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
