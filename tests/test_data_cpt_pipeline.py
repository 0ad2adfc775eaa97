"""The CPT data path end to end: mix -> decontaminate -> FIM (code only) -> tokenize -> pack."""
from __future__ import annotations

import gzip
import json

import pytest

from data_helpers import small_tokenizer
from domainspec.common.recipes.cpt_data import build_cpt_examples
from domainspec.common.data.decontam import DecontamConfig
from domainspec.common.data.fim import FIMConfig
from domainspec.common.data.sources import DataError, DataSourceConfig as S
from domainspec.eval.benchmarks.humaneval import HUMANEVAL


def test_build_cpt_examples(tmp_path):
    tok = small_tokenizer()
    with gzip.open(HUMANEVAL.default_source(), "rt") as f:
        he = json.loads(f.readline())
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                             ["Plain prose about lists.", he["prompt"] + he["canonical_solution"], "More prose."]))
    sources = [S(path="builtin:stdlib_code", weight=7, limit=20), S(path=str(notes), weight=2),
               S(path="builtin:math_corpus", weight=1, limit=100)]
    ex, rep = build_cpt_examples(sources, tok, seq_len=512, fim=FIMConfig(rate=1.0),
                                 decontam=DecontamConfig(benchmarks=["humaneval"]), out_dir=tmp_path)
    assert rep["decontam"]["dropped"] == 1 and rep["decontam"]["by_benchmark"] == {"humaneval": 1}
    assert json.loads((tmp_path / "dropped.jsonl").read_text())["task_id"] == "HumanEval/0"
    assert rep["fim_documents"] == rep["mix"]["documents"]["stdlib_code"] > 0  # every code doc, nothing else
    assert all(len(e) == 512 for e in ex) and rep["packing"]["efficiency"] > 0.99
    text = tok.decode([t for e in ex for t in e.input_ids])
    assert text.count("<|fim_prefix|>") == rep["fim_documents"]
    assert "Plain prose about lists." in text and "has_close_elements" not in text
    assert (tmp_path / "data_report.json").is_file()


def test_missing_source_fails_first(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        build_cpt_examples([S(path="builtin:math_corpus"), S(path=str(tmp_path / "gone.jsonl"))],
                           small_tokenizer(), seq_len=64)
