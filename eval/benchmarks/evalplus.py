"""HumanEval+ and MBPP+ (EvalPlus, Liu et al. 2023): differential testing on the base and the plus inputs.

Usage::

    from domainspec.eval.benchmarks.evalplus import HUMANEVAL_PLUS, MBPP_PLUS
    tasks = HUMANEVAL_PLUS.load("../shared/data/evalplus/HumanEvalPlus-v0.1.10.jsonl.gz")  # any release file
    domainspec eval score --benchmark humaneval_plus --samples S.jsonl --data HumanEvalPlus-v0.1.10.jsonl.gz --out DIR

A release file's rows give ``task_id, prompt, entry_point, canonical_solution, base_input,
plus_input, atol`` (+ ``contract``, ``test``/``assertion``, unused); the fields are read, not the
version. Each input is given to the candidate's ``entry_point`` and its output compared with the
canonical solution's output on the same input (computed once in the sandbox and cached, see
:mod:`~domainspec.eval.benchmarks.evalplus_programs`; comparison rules in
:mod:`~domainspec.eval.benchmarks.evalplus_runner`). A sample passes the benchmark when it passes the
base inputs AND the plus inputs (``passed``, pass@k); ``base_passed`` / ``base_pass@k`` are HumanEval's
and MBPP's own tests' verdict. Checking stops at the first wrong input, as EvalPlus's default does.

Choices:

* ``contract`` (the input-validation asserts EvalPlus wrote for each task) is not run: every input
  of a release file satisfies it by construction (EvalPlus's generator keeps only inputs that pass
  it), EvalPlus's own evaluation does not run it, and it costs time on every input.
* Prompts follow EvalPlus's code generation (which Qwen2.5-Coder's evaluation uses): base style =
  the row's ``prompt`` continued (HumanEval+: the function signature and docstring; MBPP+: a
  docstring with the task and one example assert), stopping at EvalPlus's direct-completion stop
  strings; chat style = EvalPlus's instruction followed by the prompt in a fence. EvalPlus also
  pre-fills the assistant turn ("Below is a Python script ..."); a chat request here does not.
* MBPP+ inputs that EvalPlus turns into tuples, sets or complex numbers after reading the JSON
  (``INPUT_RULES``, by MBPP task number) get the same types, and the few tasks whose outputs are
  not unique keep EvalPlus's special oracles (``ORACLES``).

This module runs nothing; scoring calls :meth:`EvalPlusBenchmark.prepare` with its sandbox.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

from domainspec.eval.benchmarks.base import Kind, Style, Task, apply_limit, field_texts
from domainspec.eval.code_sanitize import sanitize
from domainspec.eval.datafiles import EvalDataError, load_rows, require, unique_ids

# EvalPlus's stop strings for base models (evalplus/provider/utility.py: EOS + direct-completion extras)
_EOS = ["\nif __name__", "\ndef main(", "\nprint("]
BASE_STOP = {"humaneval": _EOS + ["\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "],
             "mbpp": _EOS + ['\n"""', "\nassert"]}
# EvalPlus's instruction for chat models (evalplus/codegen.py), the prompt in a fence after it
CHAT_INSTRUCTION = "Please provide a self-contained Python script that solves the following problem in a markdown code block:"

# MBPP+ inputs that are not plain JSON lists: how EvalPlus's loader rebuilds them, by MBPP task number
INPUT_RULES: dict[str, tuple[int, ...]] = {
    "args_to_tuples": (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630,
                       726, 740, 744, 809),
    "args_to_lists_of_tuples": (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780),
    "args_to_tuples_of_tuples": (259, 401, 445),
    "first_to_tuple": (250, 307, 405, 446, 617, 720, 763, 808),
    "first_to_list_of_tuples": (75, 413, 444, 753),
    "first_to_tuple_of_items": (278,),
    "first_to_list_of_sets": (115,),
    "first_dict_values_to_tuples": (722,),
    "second_to_tuple": (106, 750),
    "float_and_complex": (124,),
    "complex": (252,),
    "all_to_tuples": (580, 615, 791),
}
_RULE_OF = {num: rule for rule, nums in INPUT_RULES.items() for num in nums}

# tasks whose output is not unique: EvalPlus's special oracles (evalplus/eval/__init__.py), by entry point
ORACLES: dict[tuple[str, str], str] = {
    ("humaneval", "find_zero"): "polynomial_root",  # |poly(xs, out)| <= atol
    ("mbpp", "are_equivalent"): "always",
    ("mbpp", "sum_div"): "zero_or_equal",
    ("mbpp", "surface_Area"): "pyramid_surface",  # slant height read as the pyramid's height, or equal
    ("mbpp", "digit_distance_nums"): "digit_distance",  # the shorter number zero-padded, or equal
    **{("mbpp", name): "set_equal" for name in (
        "similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
        "intersection_array", "find_dissimilar", "Diff")},
    **{("mbpp", name): "not_none" for name in ("check_str", "text_match_three", "text_starta_endb")},
}


def _tuples(x):
    return tuple(_tuples(i) for i in x) if isinstance(x, list) else x


def restore_input(rule: str | None, args: list):
    """One input's argument list with EvalPlus's types for ``rule`` (see ``INPUT_RULES``)."""
    if rule is None:
        return args
    first, rest = (args[0], list(args[1:])) if args else (None, [])
    if rule == "args_to_tuples":
        return [tuple(a) for a in args]
    if rule == "args_to_lists_of_tuples":
        return [[tuple(x) for x in a] for a in args]
    if rule == "args_to_tuples_of_tuples":
        return [tuple(tuple(x) for x in a) for a in args]
    if rule == "first_to_tuple":
        return [tuple(first), *rest]
    if rule == "first_to_list_of_tuples":
        return [[tuple(x) for x in first], *rest]
    if rule == "first_to_tuple_of_items":
        return [tuple(tuple(x) if isinstance(x, list) else x for x in first), *rest]
    if rule == "first_to_list_of_sets":  # EvalPlus turns an empty list into {} (a dict): kept as it is
        return [[set(x) if isinstance(x, list) and x else {} for x in first], *rest]
    if rule == "first_dict_values_to_tuples":
        return [{k: tuple(v) for k, v in first.items()}, *rest]
    if rule == "second_to_tuple":
        return [first, tuple(args[1]), *args[2:]]
    if rule == "float_and_complex":
        return [float(args[0]), complex(args[1])]
    if rule == "complex":
        return [complex(first), *rest]
    if rule == "all_to_tuples":
        return list(_tuples(args))
    raise ValueError(f"unknown input rule {rule!r}")


class EvalPlusBenchmark:
    kind = Kind.CODE

    def __init__(self, name: str, flavor: str, default_file: str, file_glob: str):
        self.name, self.flavor = name, flavor
        self.version = f"{name}-1.0"
        self.default_file, self.file_glob = default_file, file_glob

    # ------------------------------------------------------------------ data
    def local_copy(self, data_dir: Path) -> Path:
        """``evalplus/<default release>`` under ``data_dir``, else the newest ``evalplus/<glob>`` there."""
        folder = Path(data_dir) / "evalplus"
        path = folder / self.default_file
        if not path.is_file():
            found = sorted(folder.glob(self.file_glob)) if folder.is_dir() else []
            path = found[-1] if found else path
        return path

    def default_source(self) -> str:
        from domainspec.eval.benchmarks.decontamination import default_data_dir

        return str(self.local_copy(default_data_dir()))

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        if split not in (None, "test"):
            raise EvalDataError(f"{self.name}: the EvalPlus release has one split, 'test'; got {split!r}")
        source = path or self.default_source()
        if path is None and not Path(source).is_file():
            raise EvalDataError(f"{self.name}: no data file given and none at {source}; pass --data with an EvalPlus "
                                f"release file ({self.file_glob}, from github.com/evalplus)")
        rows = load_rows(source)
        if not rows:
            raise EvalDataError(f"{source}: no {self.name} problems")
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            row = {**row, **{k: [] for k in ("base_input", "plus_input") if row.get(k) == {}}}  # Mbpp/793: {}
            require(row, where, ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input",
                                 "atol"),
                    {"prompt": str, "entry_point": str, "canonical_solution": str, "base_input": list,
                     "plus_input": list, "atol": (int, float)})
            if row["atol"] < 0:
                raise EvalDataError(f"{where}: field 'atol' should be >= 0, got {row['atol']!r}")
            tasks.append(Task(task_id=tid, prompt=row["prompt"], data=self._task_data(tid, where, row)))
        return apply_limit(tasks, limit)

    def _task_data(self, tid: str, where: str, row: dict) -> dict:
        rule = None
        if self.flavor == "mbpp":
            try:
                rule = _RULE_OF.get(int(tid.rsplit("/", 1)[-1]))
            except ValueError:
                raise EvalDataError(f"{where}: MBPP+ task_id should end in the MBPP task number, got {tid!r}") from None
        inputs = {}
        for phase in ("base", "plus"):
            for i, args in enumerate(row[f"{phase}_input"]):
                if not isinstance(args, list):
                    raise EvalDataError(f"{where}: {phase}_input[{i}] should be a list of arguments, "
                                        f"got {type(args).__name__}")
            try:
                inputs[phase] = [restore_input(rule, args) for args in row[f"{phase}_input"]]
            except (TypeError, ValueError, IndexError, AttributeError) as e:
                raise EvalDataError(f"{where}: {phase}_input does not have the shape of input rule {rule!r}: {e}") from None
        oracle = ORACLES.get((self.flavor, row["entry_point"]))
        return {**row, "inputs": inputs, "input_rule": rule, "oracle": oracle}

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        return field_texts(path, ("prompt", "canonical_solution"))

    # ------------------------------------------------------------------ generation
    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]:
        if style == "base":
            return task.prompt
        if style == "chat":
            return [{"role": "user", "content": f"{CHAT_INSTRUCTION}\n```\n{task.prompt.strip()}\n```\n"}]
        raise ValueError(f"style must be 'base' or 'chat', got {style!r}")

    def stop_sequences(self, style: Style = "base") -> list[str]:
        return list(BASE_STOP[self.flavor]) if style == "base" else []

    def protocol(self, style: Style | None = None) -> str:
        return {
            "base": f"{self.name}-base: 0-shot continuation of the EvalPlus prompt, EvalPlus's stop strings",
            "chat": f"{self.name}-chat: EvalPlus's instruction + the prompt in a fence, code from the fenced block "
                    "(no assistant pre-fill)",
        }.get(style or "", f"{self.name}: completions as given (generation protocol not recorded in the samples)")

    # ------------------------------------------------------------------ scoring
    def code(self, task: Task, completion: str) -> str:
        """The candidate's code: HumanEval+ like humaneval (prompt + continuation), MBPP+ like mbpp."""
        if self.flavor == "humaneval":
            return sanitize(completion, entry_point=task.data["entry_point"], prompt=task.prompt)
        return sanitize(completion, entry_point=task.data["entry_point"])

    def reference_completion(self, task: Task) -> str:
        """``canonical_solution`` (HumanEval+: a continuation of the prompt; MBPP+: the whole function)."""
        return task.data["canonical_solution"]

    def prepare(self, tasks: Sequence[Task], sandbox, config) -> tuple[dict[str, float], dict]:
        """Expected outputs and time limits of ``tasks`` (cached reference runs in ``sandbox``); returns each
        task's wall-clock limit and what the summary records. ``program`` needs it first."""
        from domainspec.eval.benchmarks.evalplus_programs import reference_runs

        refs, info = reference_runs(sandbox, tasks, config)
        ceiling = config.limit_ceiling_s or config.timeout_s
        limits = {}
        for task in tasks:
            ref = refs[task.task_id]
            if config.time_limit == "fixed":
                per_input, limits[task.task_id] = None, float(config.timeout_s)
            else:
                per_input, limits[task.task_id] = ref.limits(config.limit_factor, config.limit_floor_s, ceiling)
            task.data["_reference"], task.data["_per_input_limits"] = ref, per_input
        mode = "fixed" if config.time_limit == "fixed" else "per-input"
        info.update(time_limit=mode, time_limits_s=limits)
        if mode == "per-input":
            info.update(limit_factor=config.limit_factor, limit_floor_s=config.limit_floor_s, limit_ceiling_s=ceiling)
        return limits, info

    def program(self, task: Task, completion: str) -> str:
        """The check program for ``completion`` (base then plus inputs); needs :meth:`prepare` first."""
        from domainspec.eval.benchmarks.evalplus_programs import check_program

        ref = task.data.get("_reference")
        if ref is None:
            raise RuntimeError(f"{self.name}: {task.task_id} has no expected outputs yet; call prepare(tasks, sandbox, "
                               "config) first (scoring does)")
        return check_program(task, self.code(task, completion), ref, task.data["_per_input_limits"])

    def verdict(self, task: Task, result):
        """Base and plus verdicts of one executed program (``evalplus_programs.Verdict``)."""
        from domainspec.eval.benchmarks.evalplus_programs import read_verdict

        return read_verdict(result)


HUMANEVAL_PLUS = EvalPlusBenchmark("humaneval_plus", "humaneval", "HumanEvalPlus-v0.1.10.jsonl.gz",
                                   "HumanEvalPlus-*.jsonl*")
MBPP_PLUS = EvalPlusBenchmark("mbpp_plus", "mbpp", "MbppPlus-v0.2.0.jsonl.gz", "MbppPlus-*.jsonl*")
