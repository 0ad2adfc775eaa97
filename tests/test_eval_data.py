"""Benchmark loaders (local files, datasets.load_dataset path), row ids, prompts, registry checks."""
import gzip
import json
from pathlib import Path

import pytest
from data_helpers import needs_shared_data, shared_data_dir

from domainspec.eval.benchmarks import registry
from domainspec.common.artifacts import DataFileError, row_id
from domainspec.eval.datafiles import EvalDataError, load_rows
from domainspec.eval.benchmarks.base import Task
from domainspec.eval.benchmarks.registry import BENCHMARKS, RegistryError, get_benchmark, register

DATA = shared_data_dir()
needs_data = needs_shared_data("mbpp/mbpp.jsonl", "math/math500_test.jsonl")


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_registry_has_the_benchmarks():
    assert sorted(BENCHMARKS) == ["aime24", "amc23", "asdiv", "cmath", "college_math", "gaokao2023en", "gsm8k",
                                  "humaneval", "humaneval-x-cpp", "humaneval-x-go", "humaneval-x-java",
                                  "humaneval-x-js", "humaneval-x-rust", "humaneval_plus", "math", "math23k", "mbpp",
                                  "mbpp_plus", "minerva_math", "multipl-e-cpp", "multipl-e-go", "multipl-e-java",
                                  "multipl-e-js", "multipl-e-php", "multipl-e-rs", "multipl-e-sh", "multipl-e-ts",
                                  "olympiadbench", "svamp"]
    assert {get_benchmark(n).kind for n in BENCHMARKS} == {"code", "math"}
    with pytest.raises(KeyError, match="registered: aime24, amc23, .*, svamp"):
        get_benchmark("hellaswag")


def test_broken_registration_raises(monkeypatch):
    class NoGrade:
        name, version, kind = "broken", "0", "math"
        load = prompt = stop_sequences = protocol = staticmethod(lambda *a: None)
        local_copy = decontamination_texts = staticmethod(lambda *a: None)

    monkeypatch.setattr(registry, "BENCHMARKS", dict(BENCHMARKS))
    with pytest.raises(RegistryError, match="'broken' \\(math\\): missing method\\(s\\) gold, breakdown"):
        register(NoGrade())
    NoGrade.kind = "vision"
    with pytest.raises(RegistryError, match="kind must be one of"):
        register(NoGrade())
    taken = type("Taken", (), {**{k: getattr(get_benchmark("gsm8k"), k) for k in
                                  ("version", "kind", "load", "prompt", "stop_sequences", "protocol", "gold",
                                   "breakdown", "local_copy", "decontamination_texts")}, "name": "gsm8k"})()
    with pytest.raises(RegistryError, match="already registered"):
        register(taken)


def test_row_ids():
    assert row_id({"task_id": 11, "unique_id": "u"}, 3) == "11"
    assert row_id({"unique_id": "test/a/1.json", "idx": 4}, 3) == "test/a/1.json"
    assert row_id({"idx": 4}, 3) == "4"
    assert row_id({"question": "q"}, 3) == "3"
    # `id` (the math problem files) ranks below the benchmark id fields, above the row number
    assert row_id({"id": "gen-0-1", "question": "q"}, 3) == "gen-0-1"
    assert row_id({"id": "x", "idx": 4}, 3) == "4"


def test_one_error_type_and_a_new_benchmark_must_say_its_decontamination_text(monkeypatch):
    assert EvalDataError is DataFileError  # every `except EvalDataError` also catches the shared reader's errors

    class NoDecontam:
        name, version, kind = "nodecontam", "0", "code"
        load = prompt = stop_sequences = protocol = program = staticmethod(lambda *a: None)

    monkeypatch.setattr(registry, "BENCHMARKS", dict(BENCHMARKS))
    with pytest.raises(RegistryError, match=r"missing method\(s\) local_copy, decontamination_texts"):
        register(NoDecontam())


def test_each_benchmark_owns_its_gold_rule_and_cot_prompt():
    from domainspec.common.data.builtin.math_prompts import COT_SYSTEM_PROMPT
    from domainspec.eval.benchmarks.cot import COT_INSTRUCTION
    from domainspec.eval.benchmarks.gsm8k import gsm8k_gold
    from domainspec.eval.benchmarks.hendrycks_math import math_gold
    from domainspec.eval.grader import math_grader

    assert gsm8k_gold("so 5 + 7 = 12\n#### 1,200") == "1200"
    assert math_gold({"solution": "so \\boxed{\\frac{1}{2}}."}) == "\\frac{1}{2}"
    assert (math_grader.gsm8k_gold, math_grader.math_gold) == (gsm8k_gold, math_gold)  # re-exported, not copied
    assert COT_INSTRUCTION is COT_SYSTEM_PROMPT  # one CoT instruction for eval prompts and math training
    assert get_benchmark("gsm8k").prompt(Task("0", "1+1?"), "chat")[0]["content"] == COT_SYSTEM_PROMPT


def test_humaneval_default_and_gzip(tmp_path):
    tasks = get_benchmark("humaneval").load()
    assert len(tasks) == 164 and tasks[0].task_id == "HumanEval/0"
    gz = tmp_path / "he.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(json.dumps(tasks[0].data) + "\n")
    assert [t.task_id for t in get_benchmark("humaneval").load(str(gz))] == ["HumanEval/0"]
    assert get_benchmark("humaneval").prompt(tasks[0], "chat")[0]["content"].endswith(tasks[0].prompt + "```")


def test_hub_code_path_via_load_dataset(tmp_path, monkeypatch):
    """A folder (or hub name) goes through datasets.load_dataset; here a local folder, offline."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "gsm8k_like"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", [{"question": "1+1?", "answer": "so\n#### 2"},
                                        {"question": "2+3?", "answer": "#### 5"}])
    tasks = get_benchmark("gsm8k").load(str(folder))
    assert [(t.task_id, t.prompt) for t in tasks] == [("0", "1+1?"), ("1", "2+3?")]
    assert get_benchmark("gsm8k").gold(tasks[1]) == "5"
    with pytest.raises(EvalDataError, match="could not load with datasets.load_dataset"):
        load_rows(str(folder), split="validation")


def test_malformed_data_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n\n{"question": "q", "answer": \n')
    with pytest.raises(EvalDataError, match=r"bad.jsonl:3: not valid JSON"):
        get_benchmark("gsm8k").load(str(bad))
    write_jsonl(bad, [{"question": "q", "answer": "no marker"}])
    with pytest.raises(EvalDataError, match=r"bad.jsonl:1: 'answer' has no '#### <number>'"):
        get_benchmark("gsm8k").load(str(bad))
    write_jsonl(bad, [{"problem": 3, "answer": "1"}])
    with pytest.raises(EvalDataError, match=r"bad.jsonl:1: field 'problem' should be str, got int"):
        get_benchmark("math").load(str(bad))
    write_jsonl(bad, [{"task_id": "x", "prompt": "p", "test": "t", "entry_point": "f"}] * 2)
    with pytest.raises(EvalDataError, match=r"bad.jsonl:2: duplicate id 'x' \(first at .*bad.jsonl:1\)"):
        get_benchmark("humaneval").load(str(bad))
    with pytest.raises(EvalDataError, match="nope.jsonl: no such file"):
        get_benchmark("mbpp").load(str(tmp_path / "nope.jsonl"))


def test_full_math_formats(tmp_path):
    """Full MATH rows (type, 'Level N') and the original release layout test/<subject>/<n>.json."""
    root = tmp_path / "test"
    (root / "algebra").mkdir(parents=True)
    (root / "algebra" / "1.json").write_text(json.dumps(
        {"problem": "p", "level": "Level 3", "type": "Algebra", "solution": "$\\boxed{7}$"}))
    (root / "algebra" / "10.json").write_text(json.dumps(
        {"problem": "q", "level": "Level ?", "type": "Algebra", "solution": "$\\boxed{1}$"}))
    bench = get_benchmark("math")
    tasks = bench.load(str(root))
    assert [t.task_id for t in tasks] == ["test/algebra/1.json", "test/algebra/10.json"]
    assert bench.breakdown(tasks[0]) == {"subject": "Algebra", "level": "Level 3"}
    assert bench.breakdown(tasks[1])["level"] == "Level ?"
    assert bench.gold(tasks[0]) == "7"


@needs_data
def test_mbpp_splits_and_prompts():
    bench = get_benchmark("mbpp")
    path = str(DATA / "mbpp" / "mbpp.jsonl")
    tasks = bench.load(path)
    assert len(tasks) == 500 and (tasks[0].task_id, tasks[-1].task_id) == ("11", "510")
    assert [len(bench.load(path, split=s)) for s in ("validation", "train", "prompt", "all")] == [90, 374, 10, 974]
    assert len(bench.load(path, limit=7)) == 7
    with pytest.raises(EvalDataError, match="unknown split 'dev'"):
        bench.load(path, split="dev")
    prompt = bench.prompt(tasks[0], "base")
    # the paper's format: three shots (tasks 2, 3, 4) each closed by [DONE], then the task up to [BEGIN]
    assert prompt.count("You are an expert Python programmer, and here is your task: ") == 4
    assert prompt.count("[DONE]") == 3 and prompt.endswith(tasks[0].data["test_list"][2] + "\n[BEGIN]\n")
    assert "def similar_elements(" in prompt and "def heap_queue_largest(" in prompt and "\r" not in prompt
    assert bench.stop_sequences("base") == ["[DONE]"] and bench.stop_sequences("chat") == []
    chat = bench.prompt(tasks[0], "chat")
    assert chat[0]["role"] == "user" and "[BEGIN]" not in chat[0]["content"]
    assert tasks[0].data["entry_point"] == "remove_Occ"
    program = bench.program(tasks[0], "[BEGIN]\ndef remove_Occ(s, ch):\n    return s\n[DONE]\nmore text")
    assert "[DONE]" not in program and program.rstrip().endswith(tasks[0].data["test_list"][2].rstrip())


@needs_data
def test_math_prompts():
    tasks = get_benchmark("math").load(str(DATA / "math" / "math500_test.jsonl"), limit=2)
    chat = get_benchmark("math").prompt(tasks[0], "chat")
    assert chat[0] == {"role": "system",
                       "content": "Please reason step by step, and put your final answer within \\boxed{}."}
    assert chat[1]["content"] == tasks[0].prompt
    assert "chat-0shot-cot" in get_benchmark("math").protocol("chat")
