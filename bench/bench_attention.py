"""Training-step time on packed SFT rows: ``sdpa_segments`` (per-document SDPA) vs sdpa over the block-causal mask.

    python bench/bench_attention.py [--threads 1] [--rounds 5] [--steps 3] [--seq-len 512] [--doc-len 100]

Both sides train the same model (the math loop's tiny policy shape, same initial weights) on the same packed
rows (documents of ``--doc-len`` tokens, the loop's SFT conversations are ~95) with the same AdamW, forward +
backward + step; they alternate in blocks of ``--steps`` steps (A B A B ...) so both see the same machine
load, and the medians of their step times and of the per-round ratios are printed. Not a test.
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--doc-len", type=int, default=100)
    ap.add_argument("--batch", type=int, default=4)
    args = ap.parse_args()
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from domainspec.common.data.packing import PackedCollator, PackedExample
    from domainspec.common.models.segment_attention import register

    torch.set_num_threads(args.threads)
    register()
    cfg = Qwen2Config(vocab_size=1024, hidden_size=192, intermediate_size=512, num_hidden_layers=3,
                      num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=4096)
    g = torch.Generator().manual_seed(0)
    lens = [args.doc_len] * (args.seq_len // args.doc_len) + ([args.seq_len % args.doc_len] if args.seq_len % args.doc_len else [])
    rows = []
    for _ in range(args.batch):
        ids = torch.randint(1, 1024, (args.seq_len,), generator=g).tolist()
        rows.append(PackedExample(ids, ids, [p for n in lens for p in range(n)], lens, 0))
    sides = {}
    for attn in ("sdpa", "sdpa_segments"):
        torch.manual_seed(0)
        model = Qwen2ForCausalLM._from_config(cfg, attn_implementation=attn).train()
        batch = PackedCollator(attn)(rows)
        labels = batch.pop("labels")
        sides[attn] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8), batch, labels)

    def block(attn: str) -> float:
        model, opt, batch, labels = sides[attn]
        t0 = time.perf_counter()
        for _ in range(args.steps):
            logits = model(**batch, use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 1024), labels[:, 1:].reshape(-1))
            loss.backward()
            opt.step()
            opt.zero_grad()
        return (time.perf_counter() - t0) / args.steps

    block("sdpa"), block("sdpa_segments")  # warm-up
    times = {"sdpa": [], "sdpa_segments": []}
    for _ in range(args.rounds):
        for attn in times:
            times[attn].append(block(attn))
    print(f"packed rows: {args.batch} x {args.seq_len} tokens, documents of {args.doc_len}; {args.threads} thread(s)")
    for attn, ts in times.items():
        print(f"  {attn:14s} {statistics.median(ts) * 1000:8.1f} ms/step")
    ratios = [a / b for a, b in zip(times["sdpa"], times["sdpa_segments"])]
    print(f"  speed-up of sdpa_segments: {statistics.median(ratios):.2f}x (median of {len(ratios)} paired rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
