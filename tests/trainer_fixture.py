"""Tiny training fixture shared by the trainer tests, also a script the tests launch.

``python tests/trainer_fixture.py OUT --steps 8 ...`` (or under ``deepspeed --num_gpus 2``)
trains a tiny Qwen2 built here on synthetic token rows whose target counts differ from
row to row (so token-weighted accumulation matters) and prints ``DONE``. It does not
depend on the data or modeling modules, so the loop is tested on its own.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

VOCAB, SEQ = 97, 32



def subprocess_env() -> dict:
    """The environment for a launched training run: no inherited rank variables, one thread
    per process (deterministic numerics and no oversubscription of the 2-core machine)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    return env


def read_metrics(out) -> list[dict]:
    import json
    from pathlib import Path
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]

def tiny_model(seed: int = 0):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(seed)
    cfg = Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False, attn_implementation="sdpa")
    return Qwen2ForCausalLM(cfg)


def synthetic_rows(n: int = 64, seed: int = 0) -> list[dict]:
    """Rows of a learnable pattern (t+1 = t*3+1 mod V) with a random-length unmasked tail."""
    import torch
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        ids = [int(torch.randint(0, VOCAB, (1,), generator=g))]
        for _ in range(SEQ - 1):
            ids.append((ids[-1] * 3 + 1) % VOCAB)
        ids = torch.tensor(ids)
        labels = ids.clone()
        labels[: int(torch.randint(1, SEQ - 2, (1,), generator=g))] = -100
        rows.append({"input_ids": ids, "labels": labels, "position_ids": torch.arange(SEQ)})
    return rows


def stack_collate(rows):
    import torch
    return {k: torch.stack([r[k] for r in rows]) for k in ("input_ids", "labels", "position_ids")}


class SlowAfter:
    """Wraps an objective; sleeps in every loss call from call ``after`` on (so a test can
    SIGKILL the process mid-run). Numerics are untouched."""

    def __init__(self, inner, after: int, seconds: float):
        self.inner, self.after, self.seconds, self.calls = inner, after, seconds, 0

    def collate(self, rows):
        return self.inner.collate(rows)

    def loss(self, model, batch):
        self.calls += 1
        if self.calls > self.after:
            time.sleep(self.seconds)
        return self.inner.loss(model, batch)

    def num_targets(self, batch):
        return self.inner.num_targets(batch)

    def num_tokens(self, batch):
        return self.inner.num_tokens(batch)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--local_rank", type=int, default=None)  # passed by the deepspeed launcher
    ap.add_argument("--set", action="append", default=[], help="TrainConfig overrides key=value")
    ap.add_argument("--slow-after", type=int, default=None, help="loss calls before sleeping")
    ap.add_argument("--no-resume", action="store_true")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from domainspec.common.config import apply_overrides, build_config
    from domainspec.common.train.objectives import CausalLMObjective
    from domainspec.common.train.loop import TrainConfig, train
    cfg = build_config(TrainConfig, apply_overrides({"lr": 3e-3, "progress": False, "log_every": 1}, args.set))
    obj = CausalLMObjective(collator=stack_collate)
    if args.slow_after is not None:
        obj = SlowAfter(obj, args.slow_after, 1.0)
    res = train(tiny_model(), None, synthetic_rows(), obj, cfg, args.out, resume=not args.no_resume)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"DONE steps={res.steps} loss={res.final_loss}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
