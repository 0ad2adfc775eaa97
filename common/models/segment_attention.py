"""``sdpa_segments``: SDPA run document by document on packed rows, instead of over a block-causal mask.

Training on packed rows keeps documents apart with a ``[B, 1, T, T]`` block-causal mask under plain sdpa,
and SDPA then computes every (query, key) pair of the row, masked or not: with SFT conversations of ~100
tokens packed into 512-token rows, five in six of those pairs are masked (measured on the math loop's tiny
policy on CPU: attention forward + backward was 35% of a training step). ``sdpa_segments`` reads the
segment boundaries the collator passes on the flash-attention path (``cu_seq_lens_q`` over the flattened
batch, :class:`~domainspec.common.data.packing.PackedCollator`) and calls causal SDPA once per segment, so
it computes only the pairs a document attends to. The attention each token gets is the same as under the
mask (same softmax over the same keys; float sums in another order). Without ``cu_seq_lens_q`` (generation,
padded batches, reward-model pairs) it is transformers' sdpa, unchanged.

Usage::

    attn = training_attention(resolve_attn_implementation("auto", dtype))  # "sdpa" -> "sdpa_segments"
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attn)
    batch = PackedCollator(attn)(rows)   # cu_seq_lens_*, no mask
"""
from __future__ import annotations

import functools

NAME = "sdpa_segments"


def sdpa_by_segment(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                    cu_seq_lens_q=None, **kwargs):
    """Attention of ``query`` [B, H, T, D] over ``key`` / ``value`` [B, KVH, T, D]; returns ([B, T, H, D], None)."""
    import torch
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if cu_seq_lens_q is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    b, h, t, d = query.shape
    kvh = key.shape[1]
    # the flattened batch the boundaries index: [1, heads, B*T, D]
    q = query.transpose(0, 1).reshape(1, h, b * t, d)
    k = key.transpose(0, 1).reshape(1, kvh, b * t, d)
    v = value.transpose(0, 1).reshape(1, kvh, b * t, value.shape[-1])
    bounds = [int(x) for x in cu_seq_lens_q.tolist()]
    if bounds[0] != 0 or bounds[-1] != b * t:
        raise ValueError(f"sdpa_segments: cu_seq_lens_q spans {bounds[0]}..{bounds[-1]}, the batch has {b * t} "
                         "tokens")
    p = dropout if module.training else 0.0
    parts = [F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], dropout_p=p, is_causal=True,
                                            scale=scaling, enable_gqa=kvh != h)
             for s, e in zip(bounds, bounds[1:]) if e > s]
    out = torch.cat(parts, dim=2).reshape(h, b, t, -1).permute(1, 2, 0, 3)
    return out.contiguous(), None


@functools.cache
def register() -> str:
    """Register ``sdpa_segments`` with transformers (attention and mask functions); returns its name."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, sdpa_by_segment)
    # sdpa's masks (what the fallback needs); with boundaries the mask is not read
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME


def training_attention(attn: str) -> str:
    """The attention to train with: ``sdpa_segments`` where ``attn`` is sdpa, else ``attn``."""
    return register() if attn == "sdpa" else attn
