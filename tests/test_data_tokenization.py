"""Tokenization through datasets.map: cached by tokenizer + content hash."""
from __future__ import annotations

from data_helpers import small_tokenizer
from domainspec.common.data.tokenization import tokenize_dataset, tokenize_texts, tokenizer_fingerprint


def test_cache_keyed_by_content_and_tokenizer(tmp_path):
    import datasets

    tok = small_tokenizer()
    texts = ["def f(x):\n    return x\n", "What is 2 + 3?"]
    a = tokenize_dataset(datasets.Dataset.from_dict({"text": texts}), tok, cache_dir=tmp_path)
    assert a["input_ids"] == [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    files = sorted(p.name for p in tmp_path.iterdir())
    b = tokenize_dataset(datasets.Dataset.from_dict({"text": texts}), tok, cache_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == files  # same content + tokenizer: cache reused
    assert b.cache_files[0]["filename"] == a.cache_files[0]["filename"]
    tokenize_texts(texts + ["new"], tok, cache_dir=tmp_path)
    assert len(list(tmp_path.iterdir())) == len(files) + 1  # changed content: new cache file
    assert tokenizer_fingerprint(tok) == tokenizer_fingerprint(small_tokenizer())
