"""Where the math loop's problems come from: templated, or a data source read through a field mapping.

Each of the loop's three problem sets (``problems.seed_source``, ``round_source``, ``heldout_source``)
is one :class:`ProblemSource`:

* ``path: templated`` (the default): generated arithmetic problems (``domainspec.math.synthetic``);
* a local JSONL / JSON / Parquet / CSV file, or a ``datasets`` hub name (``name`` or ``name:config``)
  with a ``split``, read by ``eval/datafiles.py: load_rows`` (a bad line names ``path:line``) and mapped
  field by field: ``question_field``, ``answer_field`` (a final answer; a value holding a GSM8K
  ``#### N`` line or a ``\\boxed{}`` is a worked solution and its final answer is taken from it) and
  ``solution_field`` (a worked solution; its answer is its GSM8K ``#### N`` line, else its last
  ``\\boxed{}``). GSM8K: the defaults (``question`` / ``answer``); MATH: ``question_field: problem,
  solution_field: solution`` (``answer`` when present); NuminaMath-CoT: ``question_field: problem,
  answer_field: null, solution_field: solution``. Round problems may come without answers
  (``answer_field: null``): the majority vote of the samples fixes one (``rejection_sampling.grade_rows``);
* ``benchmark: gsm8k | math | ...`` (held-out sets): a registered benchmark's own loader and gold answer.

The one answer extraction is used (``gsm8k_gold``, ``eval.grader.extract.last_boxed``). Seed solutions in
GSM8K form become the CoT format the loop trains (calculator annotations ``<<...>>`` dropped, the
``#### N`` line replaced by ``The answer is \\boxed{N}``). A row without a mapped field, a seed without a
solution or a held-out problem without an answer is an error naming the file and line; an unreachable
hub name (offline) is an error naming the source before any training.

Data-source training problems (seed and round) share no question with the held-out set and are
decontaminated (``common/data/decontam.py``, word 10-grams) against the held-out set and the
evaluation benchmarks; what was dropped goes to ``data/dropped_<set>.jsonl`` and the sets' report.
Templated sets are built exactly as before (the embedded default's figures do not change).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from domainspec.common.config import Config, ConfigError
from domainspec.common.data.decontam import DecontamConfig
from domainspec.eval.benchmarks.registry import MathBenchmarkName

log = logging.getLogger(__name__)

Role = Literal["seed", "round", "heldout"]
TEMPLATED = "templated"
_DEFAULT_SPLIT = {"seed": "train", "round": "train", "heldout": "test"}


class ProblemSource(Config):
    path: str = Field(TEMPLATED, description="'templated' (generated problems), a local JSONL/JSON/Parquet/CSV "
                                             "file, or a datasets hub name ('name' or 'name:config', e.g. "
                                             "'openai/gsm8k:main').")
    benchmark: MathBenchmarkName | None = Field(None, description="Read `path` with this registered math "
                                                                  "benchmark's loader and gold answers (held-out "
                                                                  "sets: gsm8k, math, ...); the field mapping is "
                                                                  "then not used.")
    split: str | None = Field(None, description="Split of a hub dataset (default: train for seed/round "
                                                "problems, test for the held-out set).")
    question_field: str = Field("question", description="Field holding the problem text (MATH, NuminaMath: "
                                                        "problem).")
    answer_field: str | None = Field("answer", description="Field holding the final answer, or a worked "
                                                           "solution ending in '#### N' (GSM8K) or holding a "
                                                           "\\boxed{} answer; null: no answer field (round "
                                                           "problems: the samples' majority vote fixes one).")
    solution_field: str | None = Field(None, description="Field holding a worked solution (MATH, NuminaMath: "
                                                         "solution); its final answer is its '#### N' line or "
                                                         "last \\boxed{} when no answer field gives one.")

    @property
    def templated(self) -> bool:
        return self.path == TEMPLATED and self.benchmark is None

    @model_validator(mode="after")
    def _check(self) -> "ProblemSource":
        if self.benchmark is not None and self.path == TEMPLATED:
            raise ValueError(f"benchmark {self.benchmark!r} needs `path`: its data file or hub name")
        return self

    def label(self, role: Role) -> str:
        if self.templated:
            return TEMPLATED
        split = self.split or _DEFAULT_SPLIT[role]
        return f"{self.benchmark + ': ' if self.benchmark else ''}{self.path} [{split}]"


def default_decontam() -> DecontamConfig:
    # the loop's evaluation benchmarks (GSM8K, MATH); the held-out set is always added
    return DecontamConfig(benchmarks=["gsm8k", "math"])


# ---------------------------------------------------------------- rows -> problems

_GSM8K_FINAL = re.compile(r"\n?####\s*(.+?)\s*$")


def cot_solution(text: str) -> str:
    """A worked solution in the CoT form the loop trains: GSM8K's ``#### N`` line becomes
    ``The answer is \\boxed{N}`` and its calculator annotations go; other solutions are kept as they are."""
    from domainspec.eval.benchmarks.gsm8k import gsm8k_gold
    from domainspec.eval.grader.extract import _ANNOTATION  # GSM8K's calculator annotations, defined once
    text = text.strip()
    if not _GSM8K_FINAL.search(text):
        return text
    answer = gsm8k_gold(text)
    body = _ANNOTATION.sub("", _GSM8K_FINAL.sub("", text)).rstrip()
    return f"{body}\nThe answer is \\boxed{{{answer}}}"


def _final_answer(text: str) -> str | None:
    """The final answer of a worked solution: its GSM8K ``#### N`` line, else its last ``\\boxed{}``."""
    from domainspec.eval.benchmarks.gsm8k import gsm8k_gold
    from domainspec.eval.grader.extract import last_boxed
    if _GSM8K_FINAL.search(text.strip()):
        return gsm8k_gold(text)
    boxed = last_boxed(text)
    return None if boxed is None else boxed.strip()


def map_row(row: dict, where: str, src: ProblemSource, role: Role, index: int) -> dict:
    """``{"id", "question", "answer", "solution"}`` of one data row under ``src``'s field mapping."""
    from domainspec.common.artifacts import row_id
    from domainspec.eval.datafiles import EvalDataError, require
    fields = [src.question_field] + [f for f in (src.answer_field, src.solution_field) if f]
    types = {f: str for f in fields}
    if src.answer_field:
        types[src.answer_field] = (str, int, float)  # a numeric answer column is an answer too
    require(row, where, fields, types)
    question = row[src.question_field].strip()
    if not question:
        raise EvalDataError(f"{where}: field {src.question_field!r} is empty")
    answer = solution = None
    if src.answer_field:
        value = str(row[src.answer_field])
        worked = _final_answer(value) if ("####" in value or "\\boxed" in value) else None
        answer, solution = (worked, value) if worked is not None else (value.strip(), None)
    if src.solution_field:
        solution = row[src.solution_field]
        if answer is None:
            answer = _final_answer(solution)
            if answer is None:
                raise EvalDataError(f"{where}: field {src.solution_field!r} has no '#### N' line and no \\boxed{{}} "
                                    f"answer" + (f", and there is no answer field" if not src.answer_field else ""))
    if role == "seed" and solution is None:
        raise EvalDataError(f"{where}: seed problems need a worked solution: set problems.seed_source."
                            f"solution_field (or an answer_field holding GSM8K-style solutions)")
    if role == "heldout" and not answer:
        raise EvalDataError(f"{where}: a held-out problem needs an answer (field {src.answer_field!r})")
    return {"id": f"{role}-{row_id(row, index)}", "question": question, "answer": answer or None,
            "solution": None if solution is None else cot_solution(solution)}


def load_source(src: ProblemSource, role: Role) -> list[dict]:
    """Every problem of a data source (file order). Raises DataError (a ConfigError: the CLI and the
    pipeline report it before work) naming the source, and the file, line and field of a bad row."""
    from domainspec.common.data.sources import DataError
    from domainspec.eval.datafiles import EvalDataError, load_rows
    split = src.split or _DEFAULT_SPLIT[role]
    try:
        if src.benchmark is not None:
            from domainspec.math.evaluation import BenchmarkData, benchmark_problems
            rows = benchmark_problems(BenchmarkData(name=src.benchmark, path=src.path, split=split))
            return [{**p, "id": f"{role}-{p['id']}", "solution": None} for p in rows]
        raw = load_rows(src.path, split=split)
    except EvalDataError as e:
        raise DataError(f"problems.{role}_source: {e}{_offline_hint(src.path)}") from None
    if not raw:
        raise DataError(f"problems.{role}_source: {src.path}: no rows")
    try:
        return [map_row(row, where, src, role, i) for i, (where, row) in enumerate(raw)]
    except (EvalDataError, ValueError) as e:
        raise DataError(f"problems.{role}_source: {e}") from None


def _offline_hint(path: str) -> str:
    if Path(path).expanduser().exists():
        return ""
    return (" (a hub dataset: this machine may be offline; give a local file, or fill the datasets cache and set "
            "HF_DATASETS_OFFLINE=1)")


def source_fingerprint(src: ProblemSource) -> str:
    """What a cached problem set keys on: the source's settings and, for a local file, its content hash."""
    from domainspec.common.artifacts import content_hash, file_sha256
    p = Path(src.path).expanduser()
    return content_hash({"source": src.to_dict(), "sha256": file_sha256(p) if p.is_file() else None})


# ---------------------------------------------------------------- decontamination


def contamination_index(decontam: DecontamConfig, heldout: list[dict], eval_files: dict[str, str]):
    """The n-gram index of the evaluation benchmarks (``decontam``; ``eval_files`` name -> local file adds
    the loop's evaluation data) and of the held-out questions."""
    from itertools import chain

    from domainspec.common.data.decontam import BenchmarkIndex, provided_texts
    files = {**{k: v for k, v in eval_files.items() if Path(v).expanduser().is_file()}, **decontam.files}
    benchmarks = list(decontam.benchmarks or []) + [n for n in files if n not in (decontam.benchmarks or [])]
    cfg = decontam.model_copy(update={"files": files, "benchmarks": benchmarks if decontam.benchmarks is not None
                                      else None})
    held = (("heldout", p["id"], p["question"]) for p in heldout)
    return BenchmarkIndex.from_texts(chain(provided_texts(cfg), held), n=decontam.n)


def decontaminate_problems(problems: list[dict], index, dropped_path: Path) -> tuple[list[dict], dict]:
    """The problems sharing no n-gram with ``index`` (question and solution); the others are written to
    ``dropped_path``. Returns (kept, stats: kept, dropped, by_benchmark)."""
    from domainspec.common.data.decontam import decontaminate
    stats: dict = {}
    docs = [(p["id"], p["question"] + "\n" + (p.get("solution") or ""), p) for p in problems]
    kept = [d[2] for d in decontaminate(docs, index, dropped_path=dropped_path, stats=stats)]
    return kept, stats



# ---------------------------------------------------------------- the loop's problem sets


class ProblemSetConfig(Config):
    kinds: list[str] | None = Field(None, description="Templated problem kinds (None = all of common.data.builtin.math_problems.KINDS).")
    difficulty: int = Field(1, ge=1, description="Templated difficulty level.")
    seed_problems: int = Field(1000, ge=1, description="Problems with reference solutions for the initial SFT "
                                                       "(a data source: its first N usable rows).")
    round_problems: int = Field(200, ge=1, description="New problems sampled in each round (a data source: round k "
                                                       "takes the k-th block of N usable rows, wrapping around).")
    heldout_problems: int = Field(100, ge=1, description="Held-out evaluation problems, never trained on (a data "
                                                         "source: its first N rows).")
    seed: int = Field(0, description="Seed of the problem generators.")
    seed_source: ProblemSource = Field(default_factory=ProblemSource, description="Where seed problems (with worked "
                                                                                  "solutions) come from.")
    round_source: ProblemSource = Field(default_factory=ProblemSource, description="Where round problems (answers "
                                                                                   "optional) come from.")
    heldout_source: ProblemSource = Field(default_factory=ProblemSource, description="Where held-out problems (with "
                                                                                     "answers) come from.")
    decontam: DecontamConfig = Field(default_factory=default_decontam, description="Decontamination of data-source "
                                     "seed and round problems against these benchmarks and the held-out set "
                                     "(word 10-grams, as Qwen2.5-Math).")


def _take(pool: list[dict], n: int, role: Role, src: ProblemSource) -> list[dict]:
    if len(pool) < n:
        raise ConfigError(f"problems.{role}_problems: {n} asked for, but {src.label(role)} has only {len(pool)} usable "
                          f"problems (after dropping held-out questions and contaminated rows)")
    return pool[:n]


def build_problem_sets(p: ProblemSetConfig, rounds: int, data: Path, eval_files: dict[str, str]
                       ) -> tuple[dict[str, list[dict]], dict]:
    """Held-out, seed and per-round problems, and a report of where they came from and what was dropped.

    The held-out set is drawn first and no other set shares a question with it. Seed and round
    problems may share questions with each other (one problem pool, as in Qwen2.5-Math's rejection
    sampling): small templates hold few distinct questions, and a data source is one pool too.
    """
    from domainspec.math.synthetic import templated_problems
    report: dict = {}
    src = p.heldout_source
    if src.templated:
        heldout = templated_problems(p.heldout_problems, p.seed + 1000, p.kinds, p.difficulty, prefix="heldout")
    else:
        heldout = _take(load_source(src, "heldout"), p.heldout_problems, "heldout", src)
    report["heldout"] = {"source": src.label("heldout"), "problems": len(heldout)}
    held_q = {r["question"] for r in heldout}
    index: list = []

    def pool(role: Role, src: ProblemSource) -> tuple[list[dict], dict]:
        rows = load_source(src, role)
        kept = [r for r in rows if r["question"] not in held_q]
        stats = {"source": src.label(role), "rows": len(rows), "heldout_questions_dropped": len(rows) - len(kept)}
        if p.decontam.enabled:
            if not index:
                index.append(contamination_index(p.decontam, heldout, eval_files))
            kept, d = decontaminate_problems(kept, index[0], data / f"dropped_{role}.jsonl")
            stats.update(contaminated_dropped=d["dropped"], contaminated_by=d["by_benchmark"])
        stats["usable"] = len(kept)
        return kept, stats

    src = p.seed_source
    if src.templated:
        sets = {"heldout": heldout,
                "seed": templated_problems(p.seed_problems, p.seed, p.kinds, p.difficulty, exclude=held_q,
                                           prefix="seed")}
        report["seed"] = {"source": TEMPLATED}
    else:
        rows, report["seed"] = pool("seed", src)
        sets = {"heldout": heldout, "seed": _take(rows, p.seed_problems, "seed", src)}
    report["seed"]["problems"] = len(sets["seed"])
    src = p.round_source
    if src.templated:
        for k in range(1, rounds + 1):
            sets[f"round_{k}"] = templated_problems(p.round_problems, p.seed + k, p.kinds, p.difficulty,
                                                    exclude=held_q, prefix=f"round_{k}")
        report["round"] = {"source": TEMPLATED}
    elif rounds:
        rows, report["round"] = pool("round", src)
        _take(rows, p.round_problems, "round", src)
        n = p.round_problems
        for k in range(1, rounds + 1):  # round k: the k-th block of n rows, wrapping around the pool
            sets[f"round_{k}"] = [rows[((k - 1) * n + i) % len(rows)] for i in range(n)]
    if rounds:
        report["round"].update(problems_per_round=p.round_problems,
                               without_answer=sum(r.get("answer") is None for r in sets["round_1"]))
    for role, entry in report.items():
        if entry.get("contaminated_dropped") or entry.get("heldout_questions_dropped"):
            log.info("problems (%s): %s", role, entry)
    return sets, report
