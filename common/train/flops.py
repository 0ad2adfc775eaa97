"""FLOP accounting for MFU: a model's training FLOPs per token and the one table of device peaks.

MFU = model FLOPs per token x tokens/s / (peak FLOP/s per device x world size); the training
loop logs it in metrics.jsonl (null where the peak is unknown, e.g. on CPU).
"""
from __future__ import annotations


def model_flops_per_token(model, seq_len: int) -> float:
    """Training FLOPs per token: 6N + 12 * layers * hidden * seq_len (Kaplan et al. 2020;
    PaLM appendix B). N counts the matmul parameters: the input embedding table is a lookup
    and is left out, the output projection counts once even when tied to it."""
    def numel(p):  # ZeRO-3 partitions parameters: p.numel() is then 0 and ds_numel the full size
        return getattr(p, "ds_numel", p.numel())

    cfg = model.config
    emb = model.get_input_embeddings().weight
    n = sum(numel(p) for p in model.parameters() if p is not emb)
    out = model.get_output_embeddings()
    if out is not None and out.weight is emb:
        n += numel(emb)  # tied: the LM head matmul is real compute
    return 6.0 * n + 12.0 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


# Dense (no sparsity) bf16 tensor-core peak FLOP/s with fp32 accumulate, from the vendors' data
# sheets (SXM parts unless named; NVIDIA prints the sparse figure beside these, twice as large).
# V100 and T4 have no bf16: their fp16 figure. A10G (AWS g5) is not the A10: its dense bf16 peak
# is 70 TFLOP/s against the A10 data sheet's 125 (Baseten, "NVIDIA A10 vs A10G for ML model
# inference", https://www.baseten.co/blog/nvidia-a10-vs-a10g-for-ml-model-inference/).
# Matched as substrings of the lower-cased device name, first match wins, so a name comes before
# every name it contains ("gh200" before "h200", "h100 pcie" before "h100", "a10g" before "a10").
PEAK_FLOPS_BF16 = [
    ("gb200", 2.5e15), ("b200", 2.25e15), ("gh200", 989.5e12), ("h200", 989.5e12),
    ("h100 pcie", 756e12), ("h100 nvl", 835e12), ("h100", 989.5e12), ("h800", 989.5e12),
    ("a100", 312e12), ("a800", 312e12), ("l40s", 362e12), ("l40", 181e12), ("l4", 121e12),
    ("a10g", 70e12), ("a10", 125e12), ("a6000", 155e12), ("4090", 165e12), ("3090", 71e12),
    ("v100", 125e12), ("t4", 65e12), ("mi300x", 1307e12), ("mi250x", 383e12),
]


def peak_flops(device=None) -> float | None:
    """Peak dense bf16 FLOP/s of ``device`` (a torch.device, 'cuda:0', or a GPU name; default:
    this process's accelerator); None on CPU or for a device the table does not know."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    name = str(device)
    if isinstance(device, torch.device) or name.startswith(("cuda", "cpu")):
        dev = torch.device(device)
        if dev.type != "cuda" or not torch.cuda.is_available():
            return None
        name = torch.cuda.get_device_name(dev)
    name = name.lower()
    for key, flops in PEAK_FLOPS_BF16:
        if key in name:
            return flops
    return None
