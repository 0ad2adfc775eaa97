"""Mixing: deterministic for a seed, realized shares match the weights, exhaustion policies."""
from __future__ import annotations

import random

import pytest

from domainspec.common.data.mixing import DEFAULT_WEIGHTS, Mixer, mix_documents


def _streams(seed=0, n=2000):
    r = random.Random(seed)
    return {"code": [f"c{i}" + "x" * r.randint(50, 500) for i in range(n)],
            "text": [f"t{i}" + "y" * r.randint(10, 300) for i in range(n)],
            "math": [f"m{i}" + "z" * r.randint(20, 100) for i in range(n)]}


def test_token_shares_match_7_2_1_and_deterministic():
    docs, rep = mix_documents(_streams(), DEFAULT_WEIGHTS, seed=0, on_exhausted="stop")
    for k, target in {"code": 0.7, "text": 0.2, "math": 0.1}.items():
        assert rep["realized"][k] == pytest.approx(target, abs=0.005)
    again, _ = mix_documents(_streams(), DEFAULT_WEIGHTS, seed=0, on_exhausted="stop")
    assert docs == again
    other, _ = mix_documents(_streams(), {"code": 1, "text": 1, "math": 1}, seed=0, on_exhausted="stop")
    assert other != docs
    # every prefix stays close to the targets (no long runs of one stream)
    m = Mixer(_streams(), DEFAULT_WEIGHTS, seed=0, limit=200)
    list(m)
    assert m.report()["realized"]["math"] == pytest.approx(0.1, abs=0.02)


def test_document_unit_and_order_within_streams():
    m = Mixer(_streams(), DEFAULT_WEIGHTS, seed=5, unit="documents", limit=1000)
    out = list(m)
    assert m.report()["documents"] == {"code": 700, "text": 200, "math": 100}
    codes = [d for n, d in out if n == "code"]
    assert codes == _streams()["code"][:700]  # each stream is read in its own order


def test_exhaustion_policies():
    s = {"a": ["x"] * 3, "b": ["y"] * 10}
    m = Mixer(s, {"a": 1, "b": 1}, unit="documents", on_exhausted="stop")
    assert len(list(m)) == 6 and m.report()["exhausted"] == ["a"]  # a,b alternate until a runs dry
    m = Mixer(s, {"a": 1, "b": 1}, unit="documents", on_exhausted="drop")
    assert len(list(m)) == 13
    m = Mixer(s, {"a": 1, "b": 1}, unit="documents", on_exhausted="cycle", limit=20)
    assert [n for n, _ in m].count("a") == 10


def test_bad_weights():
    with pytest.raises(ValueError, match="no weight for"):
        Mixer({"a": [], "b": []}, {"a": 1})
    with pytest.raises(ValueError, match="> 0"):
        Mixer({"a": []}, {"a": 0})
