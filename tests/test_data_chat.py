"""SFT rows -> messages -> ChatML tokens with assistant-only labels; errors naming file and row."""
from __future__ import annotations

import json

import pytest

from data_helpers import small_tokenizer
from domainspec.common.data.chat_data import (load_sft_conversations, pack_sft_examples, render_sft_example,
                                         row_to_messages)
from domainspec.common.data.packing import IGNORE_INDEX
from domainspec.common.data.sources import DataError, DataSourceConfig

CONV = [
    {"role": "system", "content": "You are a careful assistant."},
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5.\nThe answer is \\boxed{5}"},
    {"role": "user", "content": "And 4 + 4?"},
    {"role": "assistant", "content": "8"},
]


def _trained_text(tok, ids, labels):
    return tok.decode([i for i, l in zip(ids, labels) if l != IGNORE_INDEX])


def test_loss_masking_system_user_and_headers():
    tok = small_tokenizer()
    ids, labels = render_sft_example(CONV, tok)
    text = tok.decode(ids)
    assert text == tok.apply_chat_template(CONV, tokenize=False)  # the template's own rendering
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    # trained: exactly each assistant content + its <|im_end|>
    assert _trained_text(tok, ids, labels) == "2 + 3 = 5.\nThe answer is \\boxed{5}<|im_end|>8<|im_end|>"
    assert all(l in (IGNORE_INDEX, i) for i, l in zip(ids, labels))
    assert sum(1 for i, l in zip(ids, labels) if l == im_end) == 2
    # not trained: system/user turns (their <|im_end|> too) and the "<|im_start|>assistant\n" headers
    masked = tok.decode([i for i, l in zip(ids, labels) if l == IGNORE_INDEX])
    assert "careful assistant" in masked and "What is 2 + 3?" in masked and "And 4 + 4?" in masked
    assert masked.count("<|im_start|>assistant\n") == 2
    assert labels[0] == IGNORE_INDEX


def test_row_formats_normalize():
    want = [{"role": "user", "content": "Add 1 and 2.\n\n1, 2"}, {"role": "assistant", "content": "3"}]
    assert row_to_messages({"instruction": "Add 1 and 2.", "input": "1, 2", "output": "3"}) == want
    assert row_to_messages({"prompt": "Hi", "completion": "Hello"}) == [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert row_to_messages({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) \
        == [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    assert row_to_messages({"messages": CONV, "instruction": None}) == CONV
    with_sys = row_to_messages({"system": "S", "instruction": "I", "output": "O"})
    assert [m["role"] for m in with_sys] == ["system", "user", "assistant"]


def test_bad_rows_name_file_and_row(tmp_path):
    f = tmp_path / "sft.jsonl"
    rows = [{"prompt": "a", "completion": "b"}, {"question": "q", "response": "r"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    it = load_sft_conversations(DataSourceConfig(path=str(f)))
    assert next(it)[1]["content"] == "b"
    with pytest.raises(DataError, match=r"sft\.jsonl: row 2: row fits no SFT format"):
        next(it)
    with pytest.raises(DataError, match="role 'robot'"):
        row_to_messages({"messages": [{"role": "robot", "content": "x"}]}, where="f:1")
    with pytest.raises(DataError, match="no assistant turn"):
        row_to_messages({"messages": [{"role": "user", "content": "x"}]}, where="f:1")
    with pytest.raises(DataError, match="content is int"):
        row_to_messages({"messages": [{"role": "user", "content": 3}]}, where="f:1")


def test_sft_packing_keeps_samples_whole():
    tok = small_tokenizer()
    convs = [[{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": "ok " * i}]
             for i in range(1, 12)]
    rendered = [render_sft_example(c, tok) for c in convs]
    packed = pack_sft_examples(rendered, seq_len=64, pad_id=tok.pad_token_id)
    assert sorted(n for e in packed for n in e.seq_lens) == sorted(len(x) for x, _ in rendered)
    trained = sum(1 for e in packed for l in e.labels if l != IGNORE_INDEX)
    assert trained == sum(1 for _, y in rendered for l in y if l != IGNORE_INDEX)  # first tokens were masked
