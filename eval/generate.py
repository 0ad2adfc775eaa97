"""Sampling completions into a resumable samples JSONL: the generate half of the one generate->score path.

:func:`generate_samples` is what every evaluation uses (the ``eval`` stage and ``domainspec eval
generate`` through :func:`generate_for_benchmark`, the Coder held-out eval, the math loop's
evaluation); what differs is only the *completer* that turns tasks into texts (a benchmark's
prompts through a backend, or CoT/TIR inference).

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

import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from domainspec.common.artifacts import content_hash, iter_jsonl, read_jsonl_rows
from domainspec.common.models.sampling import SamplingConfig
from domainspec.eval.benchmarks.base import Task
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
    for where, row in iter_jsonl(path):  # the one JSONL reader: bad JSON is an error naming path:line
        try:
            tid, idx = str(row["task_id"]), int(row["sample_index"])
        except (KeyError, TypeError, ValueError) as e:
            raise EvalDataError(f"{where}: not a samples row with task_id and sample_index ({e})") from None
        if row.get("gen_hash") != gen_hash:
            raise EvalDataError(
                f"{where}: written with other generation settings (gen_hash {row.get('gen_hash')} "
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


# One completer = how a list of tasks becomes completions: (tasks, sampling, sample_start, on_done) -> per task,
# ``sampling.n`` texts. ``sample_start[i]`` is the sample index of task i's first completion (resuming);
# ``on_done(i, texts)`` is called as soon as task i's completions are finished.
Completer = Callable[[Sequence[Task], SamplingConfig, Sequence[int], Callable[[int, list[str]], None] | None],
                     list[list[str]]]


def prompted_completer(backend, bench, style: str, render: Callable[[Task], str | list[dict]] | None = None,
                       progress: bool = True) -> Completer:
    """Completions of the benchmark's prompt (or ``render(task)``: a string or chat messages) through ``backend``."""
    def prompt_text(task: Task) -> str:
        p = render(task) if render is not None else bench.prompt(task, style)
        return backend.apply_chat_template(p) if isinstance(p, list) else p

    def complete(tasks, sampling, sample_start, on_done):
        return backend.generate([prompt_text(t) for t in tasks], sampling, progress=progress,
                                sample_start=list(sample_start), on_done=on_done)
    return complete


def generate_samples(tasks: Sequence[Task], complete: Completer, sampling: SamplingConfig, out: str | Path,
                     meta: dict, resume: bool = True) -> list[dict]:
    """Sample ``sampling.n`` completions per task into the samples JSONL ``out``; returns the file's rows of
    ``tasks`` (task order, then sample index).

    Rows are ``{"task_id", "sample_index", "completion", **meta, "gen_hash"}``, appended as soon as a task's
    samples are done. ``gen_hash`` covers ``meta`` and every sampling field that changes a sample
    (not ``n`` or ``batch_size``). With ``resume`` a second call generates only the samples not yet in
    the file and refuses a file written with other settings; without it the file is started afresh.
    """
    # every field that changes a sample; the servers do not, and the default backend keeps older files' hash
    exclude = {"n", "batch_size", "server"} | ({"backend"} if sampling.backend == "hf" else set())
    settings = {**meta, **sampling.model_dump(exclude=exclude)}
    gen_hash = content_hash(settings)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not resume:
        out.unlink(missing_ok=True)
    done = read_done(out, gen_hash)
    groups: dict[int, list[tuple[Task, int]]] = defaultdict(list)  # jobs grouped by how many samples they need
    for task in tasks:
        for start, count in _missing_runs(done.get(task.task_id, set()), sampling.n):
            groups[count].append((task, start))
    todo = sum(count * len(jobs) for count, jobs in groups.items())
    log.info("%s: %d tasks x %d samples; %d already in %s, %d to generate", meta.get("benchmark", "samples"),
             len(tasks), sampling.n, len(tasks) * sampling.n - todo, out, todo)
    with open(out, "a", encoding="utf-8") as f:
        for count, jobs in sorted(groups.items()):
            written = [False] * len(jobs)

            def write(i: int, completions: list[str], jobs=jobs, count=count, written=written) -> None:
                task, start = jobs[i]
                if len(completions) != count or written[i]:
                    raise ValueError(f"task {task.task_id}: the completer returned {len(completions)} completions "
                                     f"{'again ' if written[i] else ''}where {count} were asked for")
                for k, text in enumerate(completions):
                    f.write(json.dumps({"task_id": task.task_id, "sample_index": start + k, "completion": text,
                                        **meta, "gen_hash": gen_hash}) + "\n")
                f.flush()
                written[i] = True

            complete([t for t, _ in jobs], sampling.replace(n=count), [s for _, s in jobs], write)
            if not all(written):  # a completer that drops a task would silently lose its samples
                missing = [jobs[i][0].task_id for i, w in enumerate(written) if not w]
                raise ValueError(f"the completer returned nothing for {len(missing)} task(s): {missing[:5]}")
    # the file's rows of these tasks in task order, then sample order (completers finish in any order)
    order = {t.task_id: i for i, t in enumerate(tasks)}
    rows = [r for r in read_jsonl_rows(out) if str(r["task_id"]) in order]
    return sorted(rows, key=lambda r: (order[str(r["task_id"])], r["sample_index"]))


@dataclass
class BenchmarkRun:
    """Everything needed to sample a benchmark with a model: its tasks, the completer, the sampling config
    with the benchmark's stop strings added, and what the sample rows record (``meta``)."""

    bench: object
    tasks: list[Task]
    complete: Completer
    sampling: SamplingConfig
    meta: dict
    backend: object


def benchmark_run(benchmark: str, model: str, sampling: SamplingConfig, data: str | None = None,
                  split: str | None = None, limit: int | None = None, style: str = "auto",
                  gguf_file: str | None = None) -> BenchmarkRun:
    """Load the benchmark's tasks and the model; the benchmark's own prompts in the resolved style."""
    from domainspec.common.models.generation import make_backend
    from domainspec.common.models.loading import ModelConfig
    from domainspec.eval.benchmarks.registry import get_benchmark

    bench = get_benchmark(benchmark)
    tasks = bench.load(data, limit=limit, **({"split": split} if split else {}))
    backend = make_backend(sampling, ModelConfig(name_or_path=model, gguf_file=gguf_file))
    tokenizer = backend.tokenizer
    style = resolve_style(style or "auto", f"{model} {gguf_file or ''}", tokenizer)
    meta = {"style": style, "benchmark": bench.name, "version": bench.version, "model": model, "gguf_file": gguf_file}
    return BenchmarkRun(bench, tasks, prompted_completer(backend, bench, style),
                        sampling.replace(stop=[*sampling.stop, *bench.stop_sequences(style)]), meta, backend)


def generate_for_benchmark(run: BenchmarkRun, out: str | Path) -> list[dict]:
    """``domainspec eval generate`` and the ``generate`` stage: a resumable samples file, no scoring."""
    rows = generate_samples(run.tasks, run.complete, run.sampling, out, run.meta, resume=True)
    stats = getattr(run.backend, "last_stats", {})
    log.info("%s: %d samples in %s%s", run.meta["benchmark"], len(rows), out,
             f", {stats['tokens_per_second']:.1f} generated tokens/s" if stats else "")
    return rows
