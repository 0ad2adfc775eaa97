"""Packing: per-document isolation on a tiny random Qwen2 (sdpa, eager), layout, collator outputs."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from data_helpers import tiny_qwen2  # noqa: E402
from domainspec.common.data.packing import (IGNORE_INDEX, PackedCollator, block_causal_mask, pack_documents,  # noqa: E402
                                       packing_stats, padded_efficiency)


def _docs(lengths, vocab=128, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, vocab, (n,), generator=g).tolist() for n in lengths]


def _segment_losses(logits, labels, seq_lens):
    """Mean next-token CE of each segment of one row (HF's shift: logits t predict label t+1)."""
    out, s = [], 0
    for n in seq_lens:
        lg, lb = logits[s:s + n - 1], labels[s + 1:s + n]
        keep = lb != IGNORE_INDEX
        if keep.any():
            out.append(torch.nn.functional.cross_entropy(lg[keep], lb[keep]).item())
        s += n
    return out


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_batch_matches_documents_alone(impl):
    model = tiny_qwen2(impl)
    docs = _docs([17, 5, 30, 11, 23, 2])
    examples = pack_documents(docs, seq_len=40, eos_id=0)
    assert len(examples) > 1 and any(len(e.seq_lens) > 2 for e in examples)
    batch = PackedCollator(impl)(examples)
    with torch.no_grad():
        out = model(**batch)
        logits = out.logits

    packed_losses, alone_losses, max_diff = [], [], 0.0
    total_loss, total_n = 0.0, 0
    for b, ex in enumerate(examples):
        s = 0
        for n in ex.seq_lens:
            ids = batch["input_ids"][b, s:s + n]
            labels = batch["labels"][b, s:s + n].clone()
            if (labels != IGNORE_INDEX).sum() > 0:
                with torch.no_grad():
                    alone = model(input_ids=ids[None], labels=labels[None])
                max_diff = max(max_diff, (alone.logits[0] - logits[b, s:s + n]).abs().max().item())
                alone_losses.append(alone.loss.item())
                k = int((labels[1:] != IGNORE_INDEX).sum())
                total_loss += alone.loss.item() * k
                total_n += k
            s += n
        packed_losses += _segment_losses(logits[b], batch["labels"][b], ex.seq_lens)
    assert max_diff < 1e-5, f"{impl}: packed logits differ from alone by {max_diff}"
    assert packed_losses == pytest.approx(alone_losses, abs=1e-5)
    # the model's own loss over the packed batch is the token-weighted mean of the documents' losses
    assert out.loss.item() == pytest.approx(total_loss / total_n, abs=1e-5)


def test_position_ids_alone_do_not_isolate_under_sdpa():
    """Why the collator builds a mask: restarts alone leak across documents on sdpa (transformers 5.x)."""
    model = tiny_qwen2("sdpa")
    ex = pack_documents(_docs([9, 12]), seq_len=23, eos_id=0)
    batch = PackedCollator("sdpa")(ex)
    with torch.no_grad():
        leaky = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits
        alone = model(input_ids=batch["input_ids"][:, 10:22]).logits
    # If this starts failing, transformers isolates by position_ids on sdpa; the mask is still correct.
    assert (leaky[0, 10:22] - alone[0]).abs().max().item() > 1e-3


def test_sft_bins_isolation_with_masked_labels():
    model = tiny_qwen2("sdpa")
    docs = _docs([12, 7, 20, 9])
    labels = [[IGNORE_INDEX] * (len(d) // 2) + d[len(d) // 2:] for d in docs]  # "prompt" half masked
    examples = pack_documents(docs, seq_len=32, labels=labels, pad_last=False)
    batch = PackedCollator("sdpa", pad_id=0)(examples)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
    got = sorted(x for b, ex in enumerate(examples)
                 for x in _segment_losses(logits[b], batch["labels"][b], ex.seq_lens))
    want = []
    for d, lab in zip(docs, labels):
        with torch.no_grad():
            want.append(model(input_ids=torch.tensor([d]), labels=torch.tensor([lab])).loss.item())
    assert got == pytest.approx(sorted(want), abs=1e-5)


def test_stream_layout_restarts_positions_and_masks_first_labels():
    docs = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [14]]
    ex = pack_documents(docs, seq_len=6, eos_id=0)
    flat = [t for e in ex for t in e.input_ids]
    assert flat[:16] == [1, 2, 3, 0, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 0, 14]  # EOS-joined, long doc split
    assert all(len(e) == 6 for e in ex)
    for e in ex:
        s = 0
        for n in e.seq_lens:
            assert e.position_ids[s:s + n] == list(range(n))
            assert e.labels[s] == IGNORE_INDEX  # never predicted from the previous document
            s += n
    assert ex[0].labels == [IGNORE_INDEX, 2, 3, 0, IGNORE_INDEX, 5]
    stats = packing_stats(ex)
    assert (stats["tokens"], stats["pad_tokens"], stats["segments"]) == (18, 1, 5)  # 17 tokens incl. 3 EOS; the long doc is 3 segments
    assert stats["efficiency"] == (stats["tokens"] - stats["pad_tokens"]) / stats["tokens"]


def test_bins_never_split_and_truncate_long():
    docs = [[1] * 5, [2] * 3, [3] * 4, [4] * 12]
    ex = pack_documents(docs, seq_len=8, labels=docs, pad_last=False)
    segs = sorted(n for e in ex for n in e.seq_lens)
    assert segs == [3, 4, 5, 8]  # the 12-token sample was truncated to 8, nothing else split
    assert all(len(e) <= 8 for e in ex) and len(ex) == 3
    dropped = pack_documents(docs, seq_len=8, labels=docs, truncate=False, pad_last=False)
    assert sorted(n for e in dropped for n in e.seq_lens) == [3, 4, 5]


def test_collator_masks_and_flash_fields():
    ex = pack_documents([[1, 2, 3], [4, 5]], seq_len=7, eos_id=0)  # segments 4, 3
    sdpa = PackedCollator("sdpa")(ex)
    m = sdpa["attention_mask"]
    assert m.dtype == torch.bool and m.shape == (1, 1, 7, 7)
    assert m[0, 0, 4, 3].item() is False and m[0, 0, 4, 4].item() is True and m[0, 0, 3, 0].item() is True
    assert m[0, 0, 0, 1].item() is False  # causal
    eager = PackedCollator("eager")(ex)["attention_mask"]
    assert eager.dtype == torch.float32 and eager[0, 0, 4, 4] == 0 and eager[0, 0, 4, 3] < -1e30
    flash = PackedCollator("flash_attention_2")(ex + ex)
    assert "attention_mask" not in flash
    assert flash["cu_seq_lens_q"].tolist() == [0, 4, 7, 11, 14] and flash["max_length_q"] == 4
    assert block_causal_mask([[2, 1]], 3)[0, 0].tolist() == [[True, False, False], [True, True, False],
                                                            [False, False, True]]


def test_collator_pads_ragged_rows_as_isolated_segments():
    ex = pack_documents([[1, 2, 3, 4, 5], [6, 7]], seq_len=5, labels=[[1, 2, 3, 4, 5], [6, 7]], pad_last=False)
    batch = PackedCollator("sdpa", pad_id=9)(ex)
    assert batch["input_ids"][1].tolist() == [6, 7, 9, 9, 9]
    assert batch["labels"][1].tolist() == [IGNORE_INDEX, 7, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert batch["position_ids"][1].tolist() == [0, 1, 0, 1, 2]
    assert batch["attention_mask"][1, 0, 2, 1].item() is False


def test_packing_beats_padding_on_sft_length_mix():
    import random
    r = random.Random(0)
    lengths = [min(2048, int(r.lognormvariate(5.5, 0.8))) + 8 for _ in range(2000)]
    ex = pack_documents([[1] * n for n in lengths], seq_len=2048, labels=[[1] * n for n in lengths])
    assert packing_stats(ex)["efficiency"] >= 0.95
    assert padded_efficiency(lengths, 8) < 0.8


def test_bad_inputs():
    with pytest.raises(ValueError, match="eos_id"):
        pack_documents([[1, 2]], seq_len=4)
    with pytest.raises(ValueError, match="document 0 has 2 tokens but 1 labels"):
        pack_documents([[1, 2]], seq_len=4, labels=[[1]])
    with pytest.raises(ValueError, match="not supported"):
        PackedCollator("flex")


def test_collator_accepts_rows_without_seq_lens():
    ex = pack_documents([[1, 2, 3], [4, 5], [6]], seq_len=9, eos_id=0)
    rows = [{"input_ids": e.input_ids, "labels": e.labels, "position_ids": e.position_ids} for e in ex]
    a, b = PackedCollator("sdpa")(ex), PackedCollator("sdpa")(rows)
    assert all(torch.equal(a[k], b[k]) for k in a)
