"""``domainspec eval generate``: sample completions for a benchmark into a resumable JSONL file.

Usage::

    domainspec eval generate --benchmark gsm8k --data ../shared/data/gsm8k/test.jsonl \\
        --model tiny --n 4 --temperature 0.7 --max-new-tokens 256 --limit 10 --out samples.jsonl

Writes one row per sample, ``{"task_id", "sample_index", "completion", "style",
"benchmark", "model", "gen_hash"}``, appended as soon as a task's samples are
done. Run it again with the same settings and it generates only the samples not
yet in the file (a crash loses at most the batch in flight); with different
settings (``gen_hash`` differs) it refuses instead of mixing two runs. Prompts and
stop sequences come from the benchmark object; this module does not score.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
from collections import defaultdict
from pathlib import Path

from domainspec.eval.datafiles import EvalDataError

log = logging.getLogger(__name__)

# Names of instruction-tuned checkpoints (Qwen2.5-*-Instruct, SmolLM2-*-Instruct, *-chat, Gemma *-it).
_INSTRUCT_NAME = re.compile(r"instruct|chat|[-_.]it\b|[-_]sft\b", re.IGNORECASE)
# Instruct tokenizers end a turn with the chat end token; base ones with the document end.
_CHAT_EOS = {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>"}


def resolve_style(requested: str, model_name: str, tokenizer) -> str:
    """base|chat; auto = chat when the tokenizer has a chat template and the model looks instruct-tuned."""
    if requested in ("base", "chat"):
        if requested == "chat" and not getattr(tokenizer, "chat_template", None):
            raise EvalDataError(f"--style chat: the tokenizer of {model_name} has no chat template")
        return requested
    if requested != "auto":
        raise EvalDataError(f"--style must be base, chat or auto, got {requested!r}")
    instruct = bool(_INSTRUCT_NAME.search(model_name)) or tokenizer.eos_token in _CHAT_EOS
    return "chat" if instruct and getattr(tokenizer, "chat_template", None) else "base"


def generation_hash(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_done(path: Path, gen_hash: str) -> dict[str, set[int]]:
    """Sample indices per task already in ``path``; drops a torn last line left by a crash."""
    done: dict[str, set[int]] = defaultdict(set)
    if not path.exists():
        return done
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):  # killed mid-write: keep only whole lines
        cut = raw.rfind(b"\n") + 1
        log.warning("%s: dropping an incomplete last line (%d bytes) from an interrupted run",
                    path, len(raw) - cut)
        with open(path, "r+b") as f:
            f.truncate(cut)
        raw = raw[:cut]
    for lineno, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            tid, idx = str(row["task_id"]), int(row["sample_index"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise EvalDataError(f"{path}:{lineno}: not a samples row with task_id and sample_index ({e})") from None
        if row.get("gen_hash") != gen_hash:
            raise EvalDataError(
                f"{path}:{lineno}: written with other generation settings (gen_hash {row.get('gen_hash')} "
                f"!= {gen_hash}); use another --out, or delete the file to start over")
        done[tid].add(idx)
    return done


def _missing_runs(indices: set[int], n: int) -> list[tuple[int, int]]:
    """Contiguous (start, count) runs of sample indices in range(n) not in ``indices``."""
    runs, start = [], None
    for i in range(n + 1):
        if i < n and i not in indices:
            start = i if start is None else start
        elif start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def run_generate(args: argparse.Namespace) -> int:
    from domainspec.common.models.generation import GenerationParams, make_backend
    from domainspec.common.models.loading import ModelConfig, load_model_and_tokenizer
    from domainspec.eval.benchmarks.registry import get_benchmark

    bench = get_benchmark(args.benchmark)
    tasks = bench.load(getattr(args, "data", None), limit=getattr(args, "limit", None),
                       **({"split": args.split} if getattr(args, "split", None) else {}))
    model_cfg = ModelConfig(name_or_path=args.model, gguf_file=getattr(args, "gguf_file", None))
    model, tokenizer = load_model_and_tokenizer(model_cfg)
    backend = make_backend("hf", model=model, tokenizer=tokenizer)
    style = resolve_style(getattr(args, "style", "auto") or "auto",
                          f"{args.model} {getattr(args, 'gguf_file', None) or ''}", tokenizer)
    stop = list(bench.stop_sequences(style))
    n = int(args.n)
    settings = {"benchmark": bench.name, "version": bench.version, "model": args.model,
                "gguf_file": getattr(args, "gguf_file", None), "style": style, "stop": stop,
                "temperature": float(args.temperature), "top_p": float(getattr(args, "top_p", 1.0)),
                "max_new_tokens": int(args.max_new_tokens), "seed": int(getattr(args, "seed", 0))}
    gen_hash = generation_hash(settings)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = read_done(out, gen_hash)

    # (task, first sample index) jobs, grouped by how many samples each still needs
    groups: dict[int, list[tuple[object, int]]] = defaultdict(list)
    for task in tasks:
        for start, count in _missing_runs(done.get(task.task_id, set()), n):
            groups[count].append((task, start))
    todo = sum(count * len(jobs) for count, jobs in groups.items())
    log.info("%s: %d tasks x %d samples, style %s, stop %s; %d already in %s, %d to generate",
             bench.name, len(tasks), n, style, stop, len(tasks) * n - todo, out, todo)

    def render(task) -> str:
        p = bench.prompt(task, style)
        return backend.apply_chat_template(p) if isinstance(p, list) else p

    with open(out, "a", encoding="utf-8") as f:
        for count, jobs in sorted(groups.items()):
            params = GenerationParams(max_new_tokens=int(args.max_new_tokens), temperature=float(args.temperature),
                                      top_p=float(getattr(args, "top_p", 1.0)), n=count, stop=stop,
                                      seed=int(getattr(args, "seed", 0)),
                                      batch_size=int(getattr(args, "batch_size", 8)))

            def write(i: int, completions: list[str], jobs=jobs) -> None:
                task, start = jobs[i]
                for k, text in enumerate(completions):
                    f.write(json.dumps({"task_id": task.task_id, "sample_index": start + k, "completion": text,
                                        "style": style, "benchmark": bench.name, "model": args.model,
                                        "gen_hash": gen_hash}) + "\n")
                f.flush()

            backend.generate([render(t) for t, _ in jobs], params, progress=True,
                             sample_start=[s for _, s in jobs], on_done=write)
    stats = getattr(backend, "last_stats", {})
    print(f"{bench.name}: wrote {todo} samples to {out} ({len(tasks) * n - todo} resumed)"
          + (f", {stats['tokens_per_second']:.1f} generated tokens/s" if todo and stats else ""))
    return 0
