"""`sdpa_segments`: per-document SDPA on packed rows equals sdpa over the block-causal mask."""
import pytest

torch = pytest.importorskip("torch")

from data_helpers import tiny_qwen2  # noqa: E402
from domainspec.common.data.packing import PackedCollator, PackedExample  # noqa: E402
from domainspec.common.models.segment_attention import training_attention  # noqa: E402


def _rows(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for lens in ([5, 9, 2], [16], [3, 3, 3, 3, 4]):
        ids = torch.randint(1, 128, (sum(lens),), generator=g).tolist()
        pos = [p for n in lens for p in range(n)]
        rows.append(PackedExample(ids, ids, pos, lens, 0))
    return rows


def test_segments_equal_the_block_causal_mask_forward_and_backward():
    assert training_attention("sdpa") == "sdpa_segments" and training_attention("eager") == "eager"
    rows = _rows()
    grads = {}
    outs = {}
    for attn in ("sdpa", "sdpa_segments"):
        model = tiny_qwen2(attn).train()
        batch = PackedCollator(attn, pad_id=0)(rows)  # pads the shorter rows: a padding segment of its own
        assert ("attention_mask" in batch) == (attn == "sdpa")
        labels = batch.pop("labels")
        logits = model(**batch, use_cache=False).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 128), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100)
        loss.backward()
        outs[attn] = logits.detach()
        grads[attn] = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(outs["sdpa"], outs["sdpa_segments"], atol=1e-5)
    assert torch.allclose(grads["sdpa"], grads["sdpa_segments"], atol=1e-6, rtol=1e-4)
    # and documents really are apart: another first document leaves the second one's logits unchanged
    model = tiny_qwen2("sdpa_segments").eval()
    other = _rows(1)
    other[0] = PackedExample(other[0].input_ids[:5] + rows[0].input_ids[5:], rows[0].labels, rows[0].position_ids,
                             rows[0].seq_lens, 0)
    a = model(**{k: v for k, v in PackedCollator("sdpa_segments")(rows[:1]).items() if k != "labels"}).logits
    b = model(**{k: v for k, v in PackedCollator("sdpa_segments")(other[:1]).items() if k != "labels"}).logits
    assert torch.allclose(a[0, 5:], b[0, 5:], atol=1e-6) and not torch.allclose(a[0, :5], b[0, :5])


def test_without_boundaries_it_is_plain_sdpa():
    ids = torch.randint(1, 128, (2, 12), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0  # left padding, as batched generation has
    ref = tiny_qwen2("sdpa")(input_ids=ids, attention_mask=mask).logits
    seg = tiny_qwen2("sdpa_segments")(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(ref, seg)
