"""CPT prepare vs a plain ``datasets.map`` tokenization, and peak memory at 1x / 10x corpus size.

1. speed: the same JSONL corpus, the same tokenizer (the tiny model's byte-level BPE), the same
   number of worker processes, each side in its own fresh process:
   - ``prepare``: :func:`domainspec.common.data.prepare.prepare` (stream, tokenize in workers, pack,
     write memory-mapped shards), decontamination and FIM off so both sides do the same work;
   - ``datasets.map``: nanoGPT's ``data/openwebtext/prepare.py`` recipe: ``load_dataset("json")``,
     ``map(tokenize, num_proc=W)`` appending EOT, then the concatenation written to a uint16
     ``train.bin`` through ``np.memmap`` in batches.
   Reported: tokens/s of each and the ratio; peak memory of each side's whole process tree,
   sampled every 20 ms as the sum of PSS (proportional set size: pages shared by forked workers
   counted once) and, for reference, ``getrusage`` ru_maxrss of the main process and of the
   largest child (RUSAGE_CHILDREN reports the largest child, not a sum).
2. rss: ``domainspec cpt`` (implicit prepare + the first training steps of the tiny model) on a
   generated math-text corpus of N and 10 x N documents; peak tree PSS of both and their ratio.

Run: python bench/bench_prepare.py [--mb 20] [--workers 2] [--rss-docs 4000] [--skip-speed] [--skip-rss]
Targets (issue 16): prepare >= 1.0x the tokens/s of datasets.map at a fraction of its memory;
peak memory at 10x the corpus within 10% of 1x while tokens grow 10x.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


def tree_pss(pid: int) -> int:
    """Sum of PSS (bytes) of ``pid`` and its descendants (RSS where PSS is not readable)."""
    import psutil
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            total += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def run_measured(code: str, env: dict | None = None) -> dict:
    """Run ``python -c code`` in a fresh process; its last stdout line is JSON. Adds peak tree PSS."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss(proc.pid))
        time.sleep(0.02)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}):\n{err[-4000:]}")
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_tree_pss_mb"] = peak / 2**20
    return res


RUSAGE = """
import resource, json
def _rusage():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"maxrss_main_mb": s.ru_maxrss / 1024, "maxrss_largest_child_mb": c.ru_maxrss / 1024}
"""

PREPARE = """
import time, sys
from transformers import AutoTokenizer
from domainspec.common.data.prepare import PrepareConfig, prepare
from domainspec.common.data.sources import DataSourceConfig
tok = AutoTokenizer.from_pretrained({tok!r})
t = time.perf_counter()
folder, m = prepare([DataSourceConfig(path={corpus!r}, domain="text")], tok, PrepareConfig(workers={workers}),
                    {out!r}, {seq_len}, fim=None, decontam=None)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "tokens": m["tokens"] - m["pad_tokens"], **_rusage()}}))
"""

DATASETS_MAP = """
import time, numpy as np, datasets
from transformers import AutoTokenizer
datasets.disable_progress_bars()
tok = AutoTokenizer.from_pretrained({tok!r})
eot = tok.eos_token_id
def process(batch):  # nanoGPT's process(), batched (faster than one call per example)
    ids = tok(batch["text"], add_special_tokens=False, return_attention_mask=False)["input_ids"]
    ids = [x + [eot] for x in ids]
    return {{"ids": ids, "len": [len(x) for x in ids]}}
t = time.perf_counter()
ds = datasets.load_dataset("json", data_files={corpus!r}, split="train", cache_dir={cache!r})
tokenized = ds.map(process, batched=True, remove_columns=["text"], num_proc={workers})
n = int(np.sum(tokenized["len"], dtype=np.uint64))
arr = np.memmap({out!r} + "/train.bin", dtype=np.uint16, mode="w+", shape=(n,))
idx = 0
for k in range(max(1, min(1024, len(tokenized)))):  # nanoGPT writes in 1024 sharded batches
    batch = tokenized.shard(num_shards=max(1, min(1024, len(tokenized))), index=k, contiguous=True).with_format("numpy")
    chunk = np.concatenate(batch["ids"]) if len(batch) else np.zeros(0, np.uint16)
    arr[idx:idx + len(chunk)] = chunk
    idx += len(chunk)
arr.flush()
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "tokens": n, **_rusage()}}))
"""


def write_corpus(path: Path, mb: float) -> int:
    """Stdlib sources and docstrings, repeated with a varying header line until ``mb`` MiB of JSONL."""
    from domainspec.common.data.builtin.corpora import stdlib_code_documents
    docs = stdlib_code_documents(300)
    n, size = 0, 0
    with path.open("w") as f:
        while size < mb * 2**20:
            for d in docs:
                line = json.dumps({"text": f"# copy {n}\n{d}"}) + "\n"
                f.write(line)
                size += len(line)
                n += 1
                if size >= mb * 2**20:
                    break
    return n


def speed(args) -> None:
    from domainspec.common.models.loading import tiny_model_path
    tok = str(tiny_model_path())
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        n = write_corpus(corpus, args.mb)
        print(f"corpus: {n} documents, {corpus.stat().st_size / 2**20:.1f} MiB of JSONL; tokenizer {tok}; "
              f"{args.workers} workers; best of {args.repeats}")
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
        best: dict[str, dict] = {}
        for r in range(args.repeats):
            for name, code in (("prepare", PREPARE), ("datasets.map", DATASETS_MAP)):
                out = Path(tmp) / f"{name}-{r}"
                out.mkdir()
                res = run_measured(RUSAGE + code.format(tok=tok, corpus=str(corpus), workers=args.workers, out=str(out),
                                               seq_len=args.seq_len, cache=str(Path(tmp) / f"hf-{r}")), env)
                res["tokens_per_s"] = res["tokens"] / res["seconds"]
                if name not in best or res["tokens_per_s"] > best[name]["tokens_per_s"]:
                    best[name] = res
        for name, res in best.items():
            print(f"  {name:13s} {res['tokens']:>10d} tokens in {res['seconds']:6.2f} s = {res['tokens_per_s']:>9.0f} "
                  f"tokens/s | peak tree PSS {res['peak_tree_pss_mb']:7.1f} MiB | ru_maxrss main "
                  f"{res['maxrss_main_mb']:6.1f} MiB, largest child {res['maxrss_largest_child_mb']:6.1f} MiB")
        a, b = best["prepare"], best["datasets.map"]
        print(f"  speed prepare/datasets.map: {a['tokens_per_s'] / b['tokens_per_s']:.2f}x; "
              f"memory (peak tree PSS) prepare/datasets.map: {a['peak_tree_pss_mb'] / b['peak_tree_pss_mb']:.2f}")


def rss(args) -> None:
    from domainspec.common.data.builtin.math_problems import math_corpus_documents
    from domainspec.common.models.loading import tiny_model_path
    model = tiny_model_path()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = list(math_corpus_documents(args.rss_docs))
        for scale in (1, 10):
            corpus = Path(tmp) / f"math-{scale}x.jsonl"
            with corpus.open("w") as f:  # scale x the documents: copies with a distinct first line
                for c in range(scale):
                    f.writelines(json.dumps({"text": f"Exercise set {c}.\n{d}"}) + "\n" for d in base)
            cfg = Path(tmp) / f"cpt-{scale}x.yaml"
            cfg.write_text(textwrap.dedent(f"""\
                model: {{name_or_path: "{model}"}}
                seq_len: 512
                data: [{{path: "{corpus}", domain: math}}]
                decontam: {{enabled: false}}
                prepare: {{workers: {args.workers}}}
                train: {{lr: 1.0e-3, max_steps: 5, global_batch_size: 4, micro_batch_size: 2, log_every: 1,
                         save_every: 0, progress: false}}
                """))
            out = Path(tmp) / f"run-{scale}x"
            code = RUSAGE + textwrap.dedent(f"""
                import sys, glob
                from domainspec.common.recipes.cpt_cli import main
                rc = main(["--config", {str(cfg)!r}, "--out", {str(out)!r}])
                m = json.load(open(glob.glob({str(out)!r} + "/data/*/manifest.json")[0]))
                print(json.dumps({{"rc": rc, "tokens": m["tokens"], "sequences": m["sequences"], **_rusage()}}))
                """)
            t = time.perf_counter()
            res = run_measured(code, env)
            res["seconds"] = time.perf_counter() - t
            rows.append((scale, res))
            print(f"  {scale:>2d}x: {res['tokens']:>10d} tokens, {res['sequences']} sequences | peak tree PSS "
                  f"{res['peak_tree_pss_mb']:7.1f} MiB | ru_maxrss main {res['maxrss_main_mb']:6.1f} MiB, largest "
                  f"child {res['maxrss_largest_child_mb']:6.1f} MiB | {res['seconds']:.1f} s")
    (_, a), (_, b) = rows
    print(f"  10x/1x: tokens {b['tokens'] / a['tokens']:.2f}x, peak tree PSS "
          f"{b['peak_tree_pss_mb'] / a['peak_tree_pss_mb']:.3f}x, ru_maxrss main {b['maxrss_main_mb'] / a['maxrss_main_mb']:.3f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=20.0, help="speed corpus size (MiB of JSONL)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--rss-docs", type=int, default=4000, help="documents of the 1x corpus of the memory check")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-rss", action="store_true")
    args = ap.parse_args()
    if not args.skip_speed:
        print("== speed: prepare vs datasets.map (nanoGPT prepare.py style) ==")
        speed(args)
    if not args.skip_rss:
        print("== memory: domainspec cpt (prepare + 5 training steps) on 1x and 10x the corpus ==")
        rss(args)


if __name__ == "__main__":
    main()
