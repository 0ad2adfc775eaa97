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

Under a launcher (torchrun, deepspeed, SLURM: RANK / WORLD_SIZE set) the tasks are split across the
ranks (task i to rank i % world); each rank writes its own resumable shard beside the file
(``samples.rank1-of-2.jsonl``) and rank 0 merges them into one file, the same bytes one process
writes (a sample is seeded by its prompt and index, not by the process that draws it). Multi-node
runs need the output folder on a filesystem every node sees.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from domainspec.common.artifacts import content_hash, iter_jsonl, read_jsonl_rows, write_jsonl
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


def _read_samples(path: Path, gen_hash: str, repair: bool = True) -> list[dict]:
    """The rows of the samples file ``path`` (none when it does not exist), each checked to be a samples row
    written with ``gen_hash``. A torn last line left by a killed writer is cut from the file (``repair``: only
    the file's own writer may) or skipped (another process's file, read while it may still be growing)."""
    if not path.exists():
        return []
    if repair:
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # killed mid-write: keep only whole lines
            cut = raw.rfind(b"\n") + 1
            log.warning("%s: dropping an incomplete last line (%d bytes) from an interrupted run",
                        path, len(raw) - cut)
            with open(path, "r+b") as f:
                f.truncate(cut)
    rows = []
    # the one JSONL reader: bad JSON is an error naming path:line
    for where, row in iter_jsonl(path, tolerate_torn_tail=not repair):
        try:
            str(row["task_id"]), int(row["sample_index"])
        except (KeyError, TypeError, ValueError) as e:
            raise EvalDataError(f"{where}: not a samples row with task_id and sample_index ({e})") from None
        if row.get("gen_hash") != gen_hash:
            raise EvalDataError(
                f"{where}: written with other generation settings (gen_hash {row.get('gen_hash')} "
                f"!= {gen_hash}); use another --out, or delete the file to start over")
        rows.append(row)
    return rows


def _done(rows: Sequence[dict]) -> dict[str, set[int]]:
    done: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        done[str(row["task_id"])].add(int(row["sample_index"]))
    return done


def read_done(path: Path, gen_hash: str) -> dict[str, set[int]]:
    """Sample indices per task already in ``path``; drops a torn last line left by a crash."""
    return _done(_read_samples(Path(path), gen_hash))


def _by_task(rows: Sequence[dict], tasks: Sequence[Task]) -> tuple[list[dict], list[dict]]:
    """The rows of ``tasks`` in task order, then sample order; and the other rows, as they were."""
    order = {t.task_id: i for i, t in enumerate(tasks)}
    mine = sorted((r for r in rows if str(r["task_id"]) in order),
                  key=lambda r: (order[str(r["task_id"])], int(r["sample_index"])))
    return mine, [r for r in rows if str(r["task_id"]) not in order]


def _num_missing(tasks: Sequence[Task], n: int, done: dict[str, set[int]]) -> int:
    return sum(n - len({i for i in done.get(t.task_id, ()) if i < n}) for t in tasks)


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


# ---------------------------------------------------------------- data-parallel sampling

# how long a rank waits for shards (rank 0) or the merged file (the others) that stopped growing
SHARD_WAIT_S = 1800.0
_POLL_S = 0.5


def _process_group():
    """``torch.distributed`` when a process group is up; never imports torch itself."""
    dist = sys.modules.get("torch.distributed")
    return dist if dist is not None and dist.is_available() and dist.is_initialized() else None


@dataclass(frozen=True)
class Shard:
    """One process's part of a data-parallel sampling run: task i belongs to rank ``i % world``."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> "Shard":
        """The torch.distributed process group's rank, else RANK / WORLD_SIZE as torchrun, deepspeed and
        ``srun torchrun`` set them; one process when neither is there."""
        if (dist := _process_group()) is not None:
            return cls(dist.get_rank(), dist.get_world_size())
        rank, world = os.environ.get("RANK"), os.environ.get("WORLD_SIZE")
        if rank is None and world is None:
            return cls()
        try:
            shard = cls(int(rank or 0), int(world or 1))
        except ValueError:
            raise ValueError(f"RANK={rank!r} WORLD_SIZE={world!r}: expected integers (the launcher sets them)"
                             ) from None
        if not 0 <= shard.rank < shard.world:
            raise ValueError(f"RANK={rank!r} WORLD_SIZE={world!r}: the rank must be in [0, WORLD_SIZE)")
        return shard

    def path(self, out: Path) -> Path:
        """This rank's shard of the samples file ``out``: ``samples.rank1-of-4.jsonl`` beside ``samples.jsonl``."""
        return out.with_name(f"{out.stem}.rank{self.rank}-of-{self.world}{out.suffix}")


def generate_samples(tasks: Sequence[Task], complete: Completer, sampling: SamplingConfig, out: str | Path,
                     meta: dict, resume: bool = True, *, shard: Shard | None = None,
                     wait_s: float = SHARD_WAIT_S) -> list[dict]:
    """Sample ``sampling.n`` completions per task into the samples JSONL ``out``; returns the file's rows of
    ``tasks`` (task order, then sample index).

    Rows are ``{"task_id", "sample_index", "completion", **meta, "gen_hash"}``, appended as soon as a task's
    samples are done; when the call ends, the rows it added stand in task order, then sample order, after the
    rows that were there before (so the file does not depend on the order in which the completer finished).
    ``gen_hash`` covers ``meta`` and every sampling field that changes a sample (not ``n``, ``batch_size``
    or ``workers``).
    With ``resume`` a second call generates only the samples not yet in the file and refuses a file written
    with other settings; without it the file is started afresh.

    ``shard`` (default: :meth:`Shard.from_env`, i.e. the launcher's RANK / WORLD_SIZE): with more than one
    rank, every rank must call this with the same arguments. Rank r samples tasks r, r + world, ... into its own
    resumable file :meth:`Shard.path`; rank 0 waits for every shard (a ``torch.distributed`` barrier when a
    process group is up, else by watching the files: ``wait_s`` seconds without any of them growing is an
    error naming the rank that is missing samples), merges them into ``out`` (atomically, byte for byte what
    one process writes) and removes them; every rank returns the merged rows.
    """
    exclude = {"n", "batch_size", "server", "workers"} | ({"backend"} if sampling.backend == "hf" else set())
    # every field that changes a sample; the servers and worker count do not, and the default backend keeps
    # older files' hash
    gen_hash = content_hash({**meta, **sampling.model_dump(exclude=exclude)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shard = shard or Shard.from_env()
    if shard.world > 1:
        return _generate_sharded(tasks, complete, sampling, out, meta, gen_hash, resume, shard, wait_s)
    if not resume:
        out.unlink(missing_ok=True)
    before = _read_samples(out, gen_hash)
    out.touch()
    _append_missing(tasks, complete, sampling, out, meta, gen_hash, _done(before))
    rows = read_jsonl_rows(out)
    added = rows[len(before):]
    if (ordered := sum(_by_task(added, tasks), [])) != added:  # completers finish in any order
        write_jsonl(rows[:len(before)] + ordered, out)
    return _by_task(rows, tasks)[0]


def _append_missing(tasks: Sequence[Task], complete: Completer, sampling: SamplingConfig, path: Path, meta: dict,
                    gen_hash: str, done: dict[str, set[int]]) -> None:
    """Generate the samples of ``tasks`` not in ``done`` and append them to ``path`` task by task."""
    groups: dict[int, list[tuple[Task, int]]] = defaultdict(list)  # jobs grouped by how many samples they need
    for task in tasks:
        for start, count in _missing_runs(done.get(task.task_id, set()), sampling.n):
            groups[count].append((task, start))
    todo = sum(count * len(jobs) for count, jobs in groups.items())
    log.info("%s: %d tasks x %d samples; %d already in %s, %d to generate", meta.get("benchmark", "samples"),
             len(tasks), sampling.n, len(tasks) * sampling.n - todo, path, todo)
    if not todo:
        return
    with open(path, "a", encoding="utf-8") as f:
        for count, jobs in sorted(groups.items()):
            written = [False] * len(jobs)

            def write(i: int, completions: list[str], jobs=jobs, count=count, written=written) -> None:
                task, start = jobs[i]
                if len(completions) != count or written[i]:
                    raise ValueError(f"task {task.task_id}: the completer returned {len(completions)} completions "
                                     f"{'again ' if written[i] else ''}where {count} were asked for")
                for k, text in enumerate(completions):
                    row = {"task_id": task.task_id, "sample_index": start + k, "completion": text, **meta,
                           "gen_hash": gen_hash}
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")  # as write_jsonl writes it
                f.flush()
                written[i] = True

            complete([t for t, _ in jobs], sampling.replace(n=count), [s for _, s in jobs], write)
            if not all(written):  # a completer that drops a task would silently lose its samples
                missing = [jobs[i][0].task_id for i, w in enumerate(written) if not w]
                raise ValueError(f"the completer returned nothing for {len(missing)} task(s): {missing[:5]}")


def _generate_sharded(tasks: Sequence[Task], complete: Completer, sampling: SamplingConfig, out: Path, meta: dict,
                      gen_hash: str, resume: bool, shard: Shard, wait_s: float) -> list[dict]:
    """:func:`generate_samples` as one of ``shard.world`` ranks: sample this rank's tasks, then merge or wait."""
    mine = shard.path(out)
    shards = [Shard(r, shard.world).path(out) for r in range(shard.world)]
    if not resume:
        mine.unlink(missing_ok=True)
        if shard.rank == 0:
            out.unlink(missing_ok=True)
    # ``out`` is only ever replaced whole, by rank 0's merge: every rank may read it, none repairs it
    merged = _read_samples(out, gen_hash, repair=False) if resume else []
    done = _done(merged)
    if _num_missing(tasks, sampling.n, done) == 0:  # every rank sees the same file: all return here, no barrier
        return _by_task(merged, tasks)[0]
    for tid, indices in _done(_read_samples(mine, gen_hash)).items():  # this rank's shard: resume from it
        done[tid] |= indices
    own = tasks[shard.rank::shard.world]
    log.info("rank %d of %d: %d of %d tasks into %s", shard.rank, shard.world, len(own), len(tasks), mine)
    _append_missing(own, complete, sampling, mine, meta, gen_hash, done)
    group = _process_group()
    if shard.rank != 0:
        if group is not None:
            group.barrier()  # shards written
            group.barrier()  # rank 0 merged them
        return _wait_for(lambda: _merged_rows(out, gen_hash, tasks, sampling.n), [out, *shards], wait_s, group)
    if group is not None:
        group.barrier()
    new = _wait_for(lambda: _shard_rows(shards, gen_hash, tasks, sampling.n, done_out=_done(merged)),
                    shards, wait_s, group)
    write_jsonl(merged + sum(_by_task(new, tasks), []), out)
    log.info("merged %d samples from %d shards into %s", len(new), len(shards), out)
    for path in shards:
        path.unlink(missing_ok=True)
    if group is not None:
        group.barrier()
    return _by_task(merged + new, tasks)[0]


def _shard_rows(shards: list[Path], gen_hash: str, tasks: Sequence[Task], n: int,
                done_out: dict[str, set[int]]) -> tuple[list[dict] | None, str | None]:
    """(the shards' rows not in ``out``, None) when every task has its samples; else (None, which rank lacks what)."""
    have = {k: set(v) for k, v in done_out.items()}
    rows = []
    for path in shards:
        for row in _read_samples(path, gen_hash, repair=False):  # a shard may still be growing
            key = (str(row["task_id"]), int(row["sample_index"]))
            if key[1] not in have.setdefault(key[0], set()):
                have[key[0]].add(key[1])
                rows.append(row)
    lacking: dict[int, int] = defaultdict(int)
    for i, task in enumerate(tasks):
        lacking[i % len(shards)] += _num_missing([task], n, have)
    why = [f"rank {r}'s shard {shards[r]} " + (f"lacks {k} of its samples" if shards[r].exists() else "does not exist")
           for r, k in sorted(lacking.items()) if k]
    return (None, "; ".join(why)) if why else (rows, None)


def _merged_rows(out: Path, gen_hash: str, tasks: Sequence[Task], n: int) -> tuple[list[dict] | None, str | None]:
    """(the merged rows of ``tasks``, None) once rank 0 has merged the shards into ``out``; else (None, why)."""
    try:
        rows = _read_samples(out, gen_hash, repair=False)
    except EvalDataError as e:  # rank 0 has not replaced a file of an earlier run yet
        return None, f"rank 0 has not merged the shards into {out} ({e})"
    if (k := _num_missing(tasks, n, _done(rows))) > 0:
        return None, f"rank 0 has not merged the shards into {out} ({k} samples missing)"
    return _by_task(rows, tasks)[0], None


def _wait_for(check: Callable[[], tuple[list[dict] | None, str | None]], watch: list[Path], wait_s: float,
              group) -> list[dict]:
    """``check()``'s rows once it is satisfied. After a torch.distributed barrier one check decides; else
    poll, re-checking whenever a file in ``watch`` changes, and fail after ``wait_s`` s without a change."""
    seen, deadline = None, 0.0
    while True:
        state = [(p.stat().st_size, p.stat().st_mtime_ns) if p.exists() else None for p in watch]
        if state != seen:
            rows, why = check()
            if why is None:
                return rows
            seen, deadline = state, time.monotonic() + wait_s
        if group is not None or time.monotonic() > deadline:
            waited = "after the barrier" if group is not None else f"nothing changed for {wait_s:.0f}s"
            raise RuntimeError(f"data-parallel sampling: {why} ({waited}). Every rank must call generate_samples "
                               f"with the same tasks; a killed rank resumes from its shard when rerun.")
        time.sleep(_POLL_S)


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

    def __enter__(self) -> "BenchmarkRun":
        return self

    def __exit__(self, *exc) -> None:
        self.backend.close()  # worker processes, server connections


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
