"""Decontamination drops a planted benchmark problem, keeps its neighbours, logs why."""
from __future__ import annotations

import gzip
import json

import pytest
from data_helpers import needs_shared_data, shared_data_dir

from domainspec.common.data import decontam
from domainspec.common.data.decontam import BenchmarkIndex, DecontamConfig, decontaminate, provided_texts
from domainspec.common.data.sources import DataError
from domainspec.eval.benchmarks.humaneval import HUMANEVAL
from domainspec.eval.benchmarks.registry import BENCHMARKS

DATA = shared_data_dir()


def _humaneval_rows():
    with gzip.open(HUMANEVAL.default_source(), "rt") as f:
        return [json.loads(line) for line in f]


def build(**kw) -> BenchmarkIndex:
    """The index the CPT data path builds: the benchmarks' texts through TEXTS_PROVIDER."""
    cfg = DecontamConfig(**kw)
    return BenchmarkIndex.from_texts(provided_texts(cfg), cfg.n)


def test_drops_planted_humaneval_and_keeps_neighbours(tmp_path):
    index = build(benchmarks=["humaneval"])
    he = _humaneval_rows()[7]
    neighbours = ["def add(a, b):\n    return a + b\n",
                  "import os\n\nprint(os.getcwd())\n",
                  # shares short phrases with benchmark text but no 10-gram
                  "from typing import List\n\ndef filter_by_substring(strings: List[str]) -> List[str]:\n    pass\n"]
    planted = "# helper module\n" + he["prompt"] + he["canonical_solution"]
    docs = neighbours[:2] + [planted] + neighbours[2:]
    stats = {}
    kept = list(decontaminate(docs, index, tmp_path / "dropped.jsonl", stats))
    assert kept == neighbours
    assert stats["dropped"] == 1 and stats["by_benchmark"] == {"humaneval": 1}
    rows = [json.loads(x) for x in (tmp_path / "dropped.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["doc_id"] == "2" and rows[0]["task_id"] == he["task_id"]
    assert rows[0]["benchmark"] == "humaneval" and len(rows[0]["ngram"].split()) == 10


@needs_shared_data("gsm8k/test.jsonl", "math/math500_test.jsonl")
def test_math_benchmarks_and_reformatting(tmp_path):
    index = build(benchmarks=["gsm8k", "math"], data_dir=str(DATA))
    q = json.loads((DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[5])["question"]
    # whitespace/case/punctuation changes do not hide a copy
    assert index.find("Practice:\n" + q.upper().replace(" ", "  ").replace(",", " ;")).benchmark == "gsm8k"
    assert index.find("What is 2 + 3? The answer is 5.") is None


def test_n_configurable_and_user_files(tmp_path):
    f = tmp_path / "bench.jsonl"
    f.write_text(json.dumps({"task_id": "t1", "question": "alpha beta gamma delta epsilon"}) + "\n")
    idx = build(n=5, benchmarks=["mine"], files={"mine": str(f)})
    assert idx.find("x alpha beta gamma delta epsilon y").task_id == "t1"
    assert idx.find("alpha beta gamma delta") is None


def test_missing_benchmark_file(tmp_path):
    with pytest.raises(DataError, match="benchmark file for 'gsm8k' not found"):
        build(benchmarks=["gsm8k"], data_dir=str(tmp_path))
    assert len(build(benchmarks=["gsm8k"], data_dir=str(tmp_path), missing_ok=True)) == 0


def test_default_location_missing_warns_not_fails(tmp_path, monkeypatch, caplog):
    """A machine without the benchmark files can still run the default pipeline; it is told what was not checked."""
    import domainspec.eval.benchmarks.decontamination as d
    monkeypatch.delenv("DOMAINSPEC_BENCHMARK_DATA", raising=False)
    monkeypatch.setattr(d, "default_data_dir", lambda: tmp_path / "absent")
    with caplog.at_level("WARNING"):
        idx = build(benchmarks=["humaneval", "gsm8k"])
    assert idx.sizes.get("humaneval") == 164 and "gsm8k" not in idx.sizes
    assert "NOT decontaminated against gsm8k" in caplog.text


def test_named_env_location_must_exist(tmp_path, monkeypatch):
    """$DOMAINSPEC_BENCHMARK_DATA names a location: a benchmark file missing there stops the run."""
    monkeypatch.setenv("DOMAINSPEC_BENCHMARK_DATA", str(tmp_path))
    with pytest.raises(DataError, match=f"benchmark file for 'mbpp' not found at {tmp_path}"):
        build(benchmarks=["mbpp"])


def test_index_takes_any_texts_and_first_text_names_an_ngram():
    """The engine's index knows no benchmark: it indexes the (benchmark, id, text) triples it is given."""
    text = "one two three four five six"
    idx = BenchmarkIndex.from_texts([("a", "1", text), ("b", "7", "x " + text), ("b", "8", "unrelated words")], n=3)
    assert idx.sizes == {"a": 1, "b": 2}
    m = idx.find("say three four five now")
    assert (m.benchmark, m.task_id, m.ngram) == ("a", "1", "three four five")


def test_default_is_every_registered_benchmark_in_registry_order(tmp_path):
    """benchmarks: None reads each registered benchmark's own file and fields (here: user copies)."""
    files = {"humaneval": {"task_id": "H/0", "prompt": "def f():", "canonical_solution": "  return 1", "test": "t",
                           "entry_point": "f"},
             "mbpp": {"task_id": 11, "text": "mbpp text", "code": "code", "test_list": ["assert a", "assert b"]},
             "gsm8k": {"question": "q words", "answer": "a #### 1", "unused": "NOT INDEXED"},
             "math": {"problem": "p", "solution": "s", "unique_id": "test/x/1.json"}}
    code = {n: {"task_id": f"{n}/0", "prompt": f"{n} prompt", "canonical_solution": "sol", "test": "t",
                "tests": "ts"} for n in BENCHMARKS if n.endswith("_plus") or n.startswith(("humaneval-x", "multipl-e"))}
    files.update(code)
    suite = [n for n in BENCHMARKS if n not in files]  # the Qwen math suite: flattened rows, the question indexed
    files.update({n: {"task_id": f"{n}/0", "question": f"{n} question", "gold_answer": "1"} for n in suite})
    code_text = {n: (f"{n} prompt\nts" if n.startswith("multipl") else
                                        f"{n} prompt\nsol" + ("\nt" if n.startswith("humaneval-x") else "")) for n in code}
    for name, row in files.items():
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(row) + "\n")
    cfg = DecontamConfig(files={n: str(tmp_path / f"{n}.jsonl") for n in files})
    got = list(provided_texts(cfg))
    assert [g[0] for g in got] == list(BENCHMARKS)
    expected = {"humaneval": ("H/0", "def f():\n  return 1\nt"), "mbpp": ("11", "mbpp text\ncode\nassert a\nassert b"),
                "gsm8k": ("0", "q words\na #### 1"), "math": ("test/x/1.json", "p\ns"),
                **{n: (f"{n}/0", f"{n} question") for n in suite}, **{n: (f"{n}/0", t) for n, t in code_text.items()}}
    assert got == [(n, *expected[n]) for n in BENCHMARKS]


def test_unregistered_benchmark_needs_a_file_and_the_error_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match=r"'hellaswag' is not a registered benchmark \(aime24, amc23, .*, gsm8k, humaneval, .*math, .*svamp\); "
                                        r"give its path in decontam.files.hellaswag"):
        build(benchmarks=["hellaswag"], data_dir=str(tmp_path))


def test_a_bad_benchmark_line_names_file_and_line(tmp_path):
    f = tmp_path / "gsm8k.jsonl"
    f.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n{oops\n")
    with pytest.raises(ValueError, match=r"gsm8k.jsonl:2: not valid JSON"):
        build(benchmarks=["gsm8k"], files={"gsm8k": str(f)})


def test_broken_texts_provider_raises(monkeypatch):
    monkeypatch.setattr(decontam, "TEXTS_PROVIDER", "domainspec.eval.benchmarks.nowhere:texts")
    with pytest.raises(RuntimeError, match="TEXTS_PROVIDER domainspec.eval.benchmarks.nowhere:texts does not load"):
        build(benchmarks=["humaneval"])


@needs_shared_data("mbpp/mbpp.jsonl", "gsm8k/test.jsonl", "math/math500_test.jsonl")
def test_default_index_sizes_of_the_shared_data():
    """The default run's index: every row of every registered benchmark's local copy."""
    idx = build(data_dir=str(DATA))
    assert idx.sizes == {"humaneval": 164, "mbpp": 974, "gsm8k": 1319, "math": 500, "aime24": 30, "amc23": 40,
                         "minerva_math": 272, "olympiadbench": 675, "college_math": 2818, "gaokao2023en": 385,
                         "svamp": 1000, "asdiv": 2215, "cmath": 600, "math23k": 1000,
                         "humaneval_plus": 164, "mbpp_plus": 378,
                         **{f"humaneval-x-{x}": 164 for x in ("cpp", "go", "java", "js", "rust")},
                         "multipl-e-cpp": 161, "multipl-e-go": 154, "multipl-e-java": 158, "multipl-e-js": 161,
                         "multipl-e-php": 161, "multipl-e-rs": 156, "multipl-e-sh": 158, "multipl-e-ts": 159}
    assert len(idx) == 649995  # 278606 from the first four, 440273 with the Qwen suite (pinned as each came)
