"""FIM: PSM/SPM layout in Qwen2.5-Coder tokens; transformed documents decode back to the original."""
from __future__ import annotations

import random

import pytest

from data_helpers import small_tokenizer
from domainspec.common.data.builtin.corpora import stdlib_code_documents
from domainspec.common.data.fim import (FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, FIMConfig, apply_fim_documents,
                                   fim_transform, undo_fim)


def test_psm_and_spm_layout():
    text = "def add(a, b):\n    return a + b\n"
    r = random.Random(0)
    psm = fim_transform(text, random.Random(0), "psm")
    a, b = sorted(r.randint(0, len(text)) for _ in range(2))
    assert psm == f"{FIM_PREFIX}{text[:a]}{FIM_SUFFIX}{text[b:]}{FIM_MIDDLE}{text[a:b]}"
    spm = fim_transform(text, random.Random(0), "spm")
    assert spm == f"{FIM_PREFIX}{FIM_SUFFIX}{text[b:]}{FIM_MIDDLE}{text[:a]}{text[a:b]}"


@pytest.mark.parametrize("mode", ["psm", "spm", "mixed"])
def test_fim_documents_decode_back_to_original(mode):
    tok = small_tokenizer()
    docs = stdlib_code_documents(limit=12, seed=3) + ["", "x", "é ünïcode ✓\n"]
    cfg = FIMConfig(rate=0.7, mode=mode)
    out = list(apply_fim_documents(docs, cfg, seed=1))
    assert out == list(apply_fim_documents(docs, cfg, seed=1))  # deterministic
    n_fim = sum(o.startswith(FIM_PREFIX) for o in out)
    assert 0 < n_fim < len(docs)
    fim_ids = [tok.convert_tokens_to_ids(t) for t in (FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX)]
    for orig, o in zip(docs, out):
        ids = tok(o, add_special_tokens=False)["input_ids"]
        if o.startswith(FIM_PREFIX):
            assert sum(i in fim_ids for i in ids) == 3  # each sentinel is one special token
        decoded = tok.decode(ids)
        assert undo_fim(decoded) == orig


def test_rate_and_existing_sentinels():
    docs = [f"line {i}\n" * 5 for i in range(400)]
    out = list(apply_fim_documents(docs, FIMConfig(rate=0.5), seed=0))
    assert 160 < sum(o.startswith(FIM_PREFIX) for o in out) < 240
    assert list(apply_fim_documents(docs, FIMConfig(rate=0.0))) == docs
    tricky = f"print('{FIM_MIDDLE}')\n"
    assert fim_transform(tricky, random.Random(0)) == tricky and undo_fim(tricky) == tricky
