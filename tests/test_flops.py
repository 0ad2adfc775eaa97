"""The one FLOP table: peaks by GPU name (specific names before the names they contain), None on CPU."""
import pytest

torch = pytest.importorskip("torch")

from data_helpers import tiny_qwen2  # noqa: E402

from domainspec.common.train.flops import PEAK_FLOPS_BF16, model_flops_per_token, peak_flops  # noqa: E402


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H200", 989.5e12),
    ("NVIDIA GH200 480GB", 989.5e12),
    ("NVIDIA H100 80GB HBM3", 989.5e12),
    ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA A100-SXM4-40GB", 312e12),
    ("NVIDIA L40S", 362e12),
    ("NVIDIA L40", 181e12),
    ("NVIDIA L4", 121e12),
    ("NVIDIA A10G", 70e12),  # the AWS part, not the A10
    ("NVIDIA A10", 125e12),
    ("NVIDIA GeForce RTX 4090", 165e12),
    ("Tesla T4", 65e12),
])
def test_peak_table_answers_for_a_gpu_name(name, peak):
    assert peak_flops(name) == peak


def test_every_key_comes_before_the_keys_it_contains():
    keys = [k for k, _ in PEAK_FLOPS_BF16]
    for i, key in enumerate(keys):
        shadowing = [k for k in keys[:i] if k in key]
        assert not shadowing, f"{key!r} is never reached: {shadowing} matches first"


def test_none_on_cpu_and_for_unknown_devices(monkeypatch):
    assert peak_flops("cpu") is None
    assert peak_flops(torch.device("cpu")) is None
    assert peak_flops("Some Unknown Accelerator") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert peak_flops() is None  # this process's device: the CPU
    assert peak_flops("cuda:0") is None  # asked for a GPU that is not there


def test_default_device_is_this_process_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "NVIDIA A10G")
    assert peak_flops() == 70e12


def test_untied_model_leaves_the_embedding_lookup_out():
    model = tiny_qwen2("sdpa")  # Qwen2Config's default: an LM head of its own (tied: test_modeling.py)
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is not emb
    n = sum(p.numel() for p in model.parameters()) - emb.numel()
    cfg = model.config
    assert model_flops_per_token(model, 256) == 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * 256
