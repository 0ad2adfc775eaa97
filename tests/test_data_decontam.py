"""Decontamination drops a planted benchmark problem, keeps its neighbours, logs why."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from domainspec.common.data.decontam import BenchmarkIndex, DecontamConfig, decontaminate, humaneval_path
from domainspec.common.data.sources import DataError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _humaneval_rows():
    with gzip.open(humaneval_path(), "rt") as f:
        return [json.loads(line) for line in f]


def test_drops_planted_humaneval_and_keeps_neighbours(tmp_path):
    index = BenchmarkIndex.build(DecontamConfig(benchmarks=["humaneval"]))
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


@pytest.mark.skipif(not (DATA / "gsm8k" / "test.jsonl").is_file(), reason=f"benchmark data not found at {DATA}")
def test_math_benchmarks_and_reformatting(tmp_path):
    index = BenchmarkIndex.build(DecontamConfig(benchmarks=["gsm8k", "math"], data_dir=str(DATA)))
    q = json.loads((DATA / "gsm8k" / "test.jsonl").read_text().splitlines()[5])["question"]
    # whitespace/case/punctuation changes do not hide a copy
    assert index.find("Practice:\n" + q.upper().replace(" ", "  ").replace(",", " ;")).benchmark == "gsm8k"
    assert index.find("What is 2 + 3? The answer is 5.") is None


def test_n_configurable_and_user_files(tmp_path):
    f = tmp_path / "bench.jsonl"
    f.write_text(json.dumps({"task_id": "t1", "question": "alpha beta gamma delta epsilon"}) + "\n")
    idx = BenchmarkIndex.build(DecontamConfig(n=5, benchmarks=["mine"], files={"mine": str(f)}))
    assert idx.find("x alpha beta gamma delta epsilon y").task_id == "t1"
    assert idx.find("alpha beta gamma delta") is None


def test_missing_benchmark_file(tmp_path):
    with pytest.raises(DataError, match="benchmark file for 'gsm8k' not found"):
        BenchmarkIndex.build(DecontamConfig(benchmarks=["gsm8k"], data_dir=str(tmp_path)))
    assert len(BenchmarkIndex.build(DecontamConfig(benchmarks=["gsm8k"], data_dir=str(tmp_path),
                                                   missing_ok=True))) == 0


def test_default_location_missing_warns_not_fails(tmp_path, monkeypatch, caplog):
    """A machine without the benchmark files can still run the default pipeline; it is told what was not checked."""
    import domainspec.common.data.decontam as d
    monkeypatch.delenv("DOMAINSPEC_BENCHMARK_DATA", raising=False)
    monkeypatch.setattr(d, "default_data_dir", lambda: tmp_path / "absent")
    with caplog.at_level("WARNING"):
        idx = BenchmarkIndex.build(DecontamConfig(benchmarks=["humaneval", "gsm8k"]))
    assert idx.sizes.get("humaneval") == 164 and "gsm8k" not in idx.sizes
    assert "NOT decontaminated against gsm8k" in caplog.text
