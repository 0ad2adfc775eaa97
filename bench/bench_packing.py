"""Packing efficiency vs padding to the longest sample, on an SFT-like length mix.

Efficiency = non-pad tokens / all tokens in the batches fed to the model.
Two length mixes: a log-normal one shaped like instruction data (median ~300
tokens, long tail, capped at seq_len) and real rendered SFT samples (generated
math problems and stdlib functions in ChatML, with a small trained tokenizer).

Run: python bench/bench_packing.py [--seq-len 4096] [--batch-size 8] [--n 5000]
Target: packing >= 0.95 (issue 3).
"""
from __future__ import annotations

import argparse
import random
import time


def lognormal_lengths(n: int, seq_len: int, seed: int = 0) -> list[int]:
    r = random.Random(seed)
    return [max(16, min(seq_len, int(r.lognormvariate(5.7, 0.9)))) for _ in range(n)]


def rendered_lengths(n: int) -> list[int]:
    from domainspec.common.data.chat_data import render_sft_example
    from domainspec.common.data.builtin.corpora import stdlib_code_documents
    from domainspec.common.data.builtin.math_problems import generate_problems, math_corpus_documents
    from domainspec.common.models.tiny import train_tokenizer

    code = stdlib_code_documents(40)
    tok = train_tokenizer(list(math_corpus_documents(300)) + code, vocab_size=1024)
    convs = []
    probs = [p for d in (1, 2, 3) for p in generate_problems(n // 6, seed=0, difficulty=d)]
    for p in probs:
        convs.append([{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}])
    for doc in code:  # one "explain / write this function" sample per top-level def, up to n/2
        for block in doc.split("\ndef ")[1:]:
            if len(convs) >= n:
                break
            body = "def " + block.split("\n\n\n")[0]
            convs.append([{"role": "user", "content": "Write this function: " + body.split("\n")[0]},
                          {"role": "assistant", "content": body}])
    return [len(render_sft_example(c, tok)[0]) for c in convs]


def report(name: str, lengths: list[int], seq_len: int, batch_size: int) -> float:
    from domainspec.common.data.packing import pack_documents, packing_stats, padded_efficiency

    t = time.perf_counter()
    ex = pack_documents([[1] * n for n in lengths], seq_len, labels=[[1] * n for n in lengths], pad_last=True)
    dt = time.perf_counter() - t
    s = packing_stats(ex)
    shuffled = lengths[:]
    random.Random(0).shuffle(shuffled)
    pad = padded_efficiency(shuffled, batch_size)
    print(f"{name}: {len(lengths)} samples, median {sorted(lengths)[len(lengths) // 2]} tokens, "
          f"max {max(lengths)}, total {sum(lengths)}")
    print(f"  packing (seq_len {seq_len}, best-fit decreasing): efficiency {s['efficiency']:.4f} "
          f"in {s['sequences']} sequences ({dt * 1000:.0f} ms)")
    print(f"  padding to longest (batch {batch_size}, shuffled): efficiency {pad:.4f}")
    print(f"  ratio packing/padding: {s['efficiency'] / pad:.2f}x")
    return s["efficiency"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--skip-rendered", action="store_true", help="only the synthetic log-normal mix")
    a = ap.parse_args()
    effs = [report("log-normal SFT mix", lognormal_lengths(a.n, a.seq_len), a.seq_len, a.batch_size)]
    if not a.skip_rendered:
        effs.append(report("rendered ChatML samples", rendered_lengths(min(a.n, 2000)), 1024, a.batch_size))
    ok = all(e >= 0.95 for e in effs)
    print("target packing efficiency >= 0.95:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
