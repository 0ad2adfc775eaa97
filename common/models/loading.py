"""Model loading: one entry point for Hugging Face folders, hub names, GGUF files and the tiny default.

Usage::

    model, tok = load_model_and_tokenizer(ModelConfig(name_or_path="tiny"))
    model, tok = load_model_and_tokenizer(ModelConfig(name_or_path="/models/qwen2.5-7b",
                                                      rope_scaling={"type": "yarn", "factor": 2.0}),
                                          for_training=True)
    tok = load_tokenizer(ModelConfig(name_or_path="tiny"))   # the tokenizer alone, no weights

Picks the attention kernel (flash_attention_2 when flash-attn and CUDA are both
present, else PyTorch sdpa) and dtype (bf16 on CUDA GPUs that support it, fp32
otherwise) and logs both. "tiny" builds the embedded default model
(:mod:`domainspec.common.models.tiny`) once per recipe hash into a cache folder
(``$DOMAINSPEC_CACHE``, default ``~/.cache/domainspec``). It does not download anything
itself: hub names go to ``from_pretrained`` unchanged. FLOPs for MFU live in
:mod:`domainspec.common.train.flops`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from domainspec.common.config import Config, ConfigError
from domainspec.common.models.tiny import (  # noqa: F401  (re-exported API)
    DEFAULT_CORPUS, QWEN_SPECIAL_TOKENS, TINY_MODEL_DEFAULTS, TINY_RECIPE_VERSION,
    TINY_TOKENIZER_DEFAULTS, build_tiny_model, default_corpus)

log = logging.getLogger(__name__)

TINY = "tiny"
MATH_CHAT_DOCS = 400  # chats in the tokenizer corpus of a tiny model with corpus "math"


class TinySpec(Config):
    """Shape of the embedded tiny model (used only with ``name_or_path: tiny``); None = the default."""

    hidden_size: int | None = Field(None, ge=16, description="Width of the tiny Qwen2 model (default 256).")
    num_hidden_layers: int | None = Field(None, ge=1, description="Transformer layers (default 4).")
    intermediate_size: int | None = Field(None, ge=16, description="SwiGLU width (default 768).")
    num_attention_heads: int | None = Field(None, ge=1, description="Query heads (default 4).")
    num_key_value_heads: int | None = Field(None, ge=1, description="Key/value heads, GQA (default 2).")
    rope_theta: float | None = Field(None, gt=0, description="RoPE base (default 1e6 as Qwen2.5; short-context "
                                                             "tiny models copy numbers better with 1e4).")
    vocab_size: int | None = Field(None, ge=300, description="BPE vocabulary size (default 4096).")
    corpus: Literal["code+math", "math"] = Field(
        "code+math", description="Tokenizer training corpus: stdlib code + generated math text, or math only.")

    @model_validator(mode="after")
    def _heads_divide(self):
        hidden = self.hidden_size or TINY_MODEL_DEFAULTS["hidden_size"]
        heads = self.num_attention_heads or TINY_MODEL_DEFAULTS["num_attention_heads"]
        kv = self.num_key_value_heads or TINY_MODEL_DEFAULTS["num_key_value_heads"]
        if hidden % heads:
            raise ValueError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
        if heads % kv:
            raise ValueError(f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}")
        return self

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if v is not None and k not in ("vocab_size", "corpus")}


class ModelConfig(Config):
    name_or_path: str = Field(
        TINY, description='Model to load: a Hugging Face folder, a hub name, a *.gguf file, or "tiny" '
                          "(the embedded tiny Qwen2 model, built once and cached).")
    gguf_file: str | None = Field(
        None, description="GGUF file name inside the name_or_path folder (or hub repo); "
                          "de-quantized to the chosen dtype on load.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype; auto = bfloat16 on CUDA GPUs that support it, else float32.")
    attn_implementation: Literal["auto", "flash_attention_2", "sdpa", "eager"] = Field(
        "auto", description="Attention kernel; auto = flash_attention_2 when flash-attn is installed "
                            "and CUDA is available (with a 16-bit dtype), else sdpa.")
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in the backward pass (less memory, ~30% more compute).")
    rope_theta: float | None = Field(
        None, description="Override the RoPE base frequency (context extension, e.g. 1e6 for 32K).")
    rope_scaling: dict[str, Any] | None = Field(
        None, description='Override RoPE scaling, Qwen style, e.g. {"type": "yarn", "factor": 4.0, '
                          '"original_max_position_embeddings": 32768}.')
    max_position_embeddings: int | None = Field(
        None, description="Override the model's maximum positions (with rope_theta/rope_scaling).")
    trust_remote_code: bool = Field(False, description="Allow model code shipped inside the model folder.")
    tiny: TinySpec | None = Field(None, description='With name_or_path "tiny": build the tiny model with this '
                                                    "shape instead of the default (cached per shape).")

    @field_validator("rope_scaling")
    @classmethod
    def _scaling_has_type(cls, v):
        if v is not None and not (v.get("type") or v.get("rope_type")):
            raise ValueError('rope_scaling needs a "type" (e.g. "yarn", "linear", "dynamic")')
        return v


# ---------------------------------------------------------------- kernel and dtype


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_dtype(requested: str = "auto"):
    """torch dtype for ``requested``; auto = bf16 on CUDA with bf16 support, else fp32."""
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_attn_implementation(requested: str = "auto", dtype=None) -> str:
    """flash_attention_2 iff flash_attn is importable, CUDA is available and dtype is 16-bit; else sdpa."""
    import torch

    sixteen_bit = dtype is None or dtype in (torch.bfloat16, torch.float16)
    if requested == "auto":
        if flash_attn_available() and torch.cuda.is_available() and sixteen_bit:
            return "flash_attention_2"
        return "sdpa"
    if requested == "flash_attention_2":
        missing = [why for ok, why in [(flash_attn_available(), "the flash_attn package is not installed"),
                                       (torch.cuda.is_available(), "CUDA is not available"),
                                       (sixteen_bit, f"dtype {dtype} is not bfloat16/float16")] if not ok]
        if missing:
            raise ConfigError(f"model.attn_implementation: flash_attention_2 requested but "
                              f"{'; '.join(missing)} (use 'auto' or 'sdpa')")
    return requested


# ---------------------------------------------------------------- the tiny default


def cache_dir() -> Path:
    return Path(os.environ.get("DOMAINSPEC_CACHE") or Path.home() / ".cache" / "domainspec")


def tiny_recipe_hash(spec: TinySpec | None = None) -> str:
    """Content hash of everything that determines the tiny model folder."""
    import tokenizers
    import transformers

    sources = {}
    for mod in ("domainspec.common.models.tiny", "domainspec.common.data.builtin.corpora",
                "domainspec.common.data.builtin.math_problems", "domainspec.common.data.builtin.math_prompts"):
        found = importlib.util.find_spec(mod)
        if found and found.origin:
            sources[mod] = hashlib.sha256(Path(found.origin).read_bytes()).hexdigest()
    recipe = {
        "version": TINY_RECIPE_VERSION, "model": TINY_MODEL_DEFAULTS, "tokenizer": TINY_TOKENIZER_DEFAULTS,
        "corpus": DEFAULT_CORPUS, "sources": sources,
        "python": list(sys.version_info[:2]),  # the stdlib corpus depends on it
        "tokenizers": tokenizers.__version__, "transformers": transformers.__version__.split(".")[0],
    }
    if spec is not None and spec != TinySpec():
        recipe["spec"] = spec.to_dict()
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def tiny_model_path(root: str | os.PathLike | None = None, spec: TinySpec | None = None) -> Path:
    """Folder of the tiny model (default shape or ``spec``), built on first use (atomic, one builder at a time)."""
    import fcntl

    root = Path(root) if root is not None else cache_dir()
    final = root / f"tiny-{tiny_recipe_hash(spec)}"
    if (final / "config.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same recipe
        if (final / "config.json").exists():
            return final
        tmp = root / f"{final.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("building the tiny model into %s (once per recipe)", final)
        if spec is None:
            build_tiny_model(tmp)
        else:
            texts = default_corpus(stdlib_files=0, chat_docs=MATH_CHAT_DOCS) if spec.corpus == "math" else None
            build_tiny_model(tmp, texts, **({"vocab_size": spec.vocab_size} if spec.vocab_size else {}),
                             **spec.overrides())
        os.replace(tmp, final)
    return final


# ---------------------------------------------------------------- loading


def _resolve_source(cfg: ModelConfig) -> tuple[str, str | None]:
    """(from_pretrained argument, gguf file name or None), with clear errors for bad paths."""
    name, gguf = cfg.name_or_path, cfg.gguf_file
    if name == TINY:
        if gguf:
            raise ConfigError('model.gguf_file: not used with name_or_path "tiny"')
        return str(tiny_model_path(spec=cfg.tiny)), None
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if gguf:
            raise ConfigError(f"model: name_or_path is already a GGUF file ({name}); drop gguf_file")
        if not path.is_file():
            raise ConfigError(f"model.name_or_path: GGUF file not found: {path}")
        return str(path.parent), path.name
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"model.name_or_path: {path} is a file but not a .gguf; "
                              "give a model folder, a hub name, a .gguf file or 'tiny'")
        if gguf and not (path / gguf).is_file():
            raise ConfigError(f"model.gguf_file: {gguf} not found in {path}")
        if not gguf and not (path / "config.json").is_file():
            raise ConfigError(f"model.name_or_path: {path} has no config.json (not a Hugging Face "
                              "model folder; for a GGUF file set gguf_file)")
        return str(path), gguf
    if name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise ConfigError(f"model.name_or_path: no such model folder: {path}")
    return name, gguf  # a hub name: from_pretrained resolves (and caches) it


def apply_context_overrides(config, cfg: ModelConfig) -> None:
    """Apply rope_theta / rope_scaling / max_position_embeddings to a transformers config in place."""
    native = getattr(config, "max_position_embeddings", None)  # before any override
    if cfg.max_position_embeddings is not None:
        config.max_position_embeddings = cfg.max_position_embeddings
    if cfg.rope_theta is None and cfg.rope_scaling is None:
        return
    scaling = dict(cfg.rope_scaling or {})
    rope_type = scaling.pop("type", None) or scaling.pop("rope_type", None)
    if rope_type in ("yarn", "dynamic", "longrope", "llama3") and "original_max_position_embeddings" not in scaling \
            and native is not None:
        scaling["original_max_position_embeddings"] = native
    if hasattr(config, "rope_parameters"):  # transformers >= 5: one dict holds theta and scaling
        params = dict(config.rope_parameters or {})
        if rope_type:
            params = {k: v for k, v in params.items() if k in ("rope_theta", "partial_rotary_factor")}
            params.update(scaling, rope_type=rope_type)
        if cfg.rope_theta is not None:
            params["rope_theta"] = cfg.rope_theta
        config.rope_parameters = params
        try:
            config.validate_rope()
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"model.rope_scaling / rope_theta: {e}") from e
    else:  # transformers 4.x
        if cfg.rope_theta is not None:
            config.rope_theta = cfg.rope_theta
        if rope_type:
            config.rope_scaling = {"type": rope_type, "rope_type": rope_type, **scaling}


def effective_max_positions(config) -> int:
    """Longest sequence the model handles: max_position_embeddings, or original x factor under YaRN-like scaling."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    n = int(config.max_position_embeddings)
    if params.get("factor") and params.get("rope_type", params.get("type")) not in (None, "default"):
        orig = params.get("original_max_position_embeddings") or n
        n = max(n, int(orig * float(params["factor"])))
    return n


def _drop_gguf_quantizer(model) -> None:
    """A GGUF model is de-quantized on load, yet transformers keeps its gguf quantizer marker and then
    refuses ``save_pretrained``. Weights being trained are plain tensors, so the marker goes."""
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    if quantizer is not None and str(getattr(method, "value", method)) == "gguf":
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config


def load_tokenizer(cfg: ModelConfig | None = None):
    """The tokenizer of ``cfg`` alone (no weights): the same sources as :func:`load_model_and_tokenizer`,
    for backends whose model runs elsewhere (``openai``: the prompts are rendered and counted here)."""
    from transformers import AutoTokenizer

    cfg = cfg or ModelConfig()
    source, gguf = _resolve_source(cfg)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code,
                                                  **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model.name_or_path: cannot load the tokenizer of {cfg.name_or_path!r}"
                          f"{f' (gguf_file {gguf})' if gguf else ''}: {e}") from e
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model_and_tokenizer(cfg: ModelConfig | None = None, for_training: bool = False,
                             device: str | None = "auto"):
    """(model, tokenizer) for ``cfg``; eval mode on the GPU for inference, train mode (on CPU,
    for DeepSpeed to place) for training. ``device=None`` leaves the model where it loads."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cfg = cfg or ModelConfig()
    source, gguf = _resolve_source(cfg)
    common = dict(trust_remote_code=cfg.trust_remote_code)
    if gguf:
        common["gguf_file"] = gguf
    dtype = resolve_dtype(cfg.dtype)
    attn = resolve_attn_implementation(cfg.attn_implementation, dtype)
    if for_training:  # packed rows: sdpa per document instead of over a block-causal mask
        from domainspec.common.models.segment_attention import training_attention
        attn = training_attention(attn)
    try:
        config = AutoConfig.from_pretrained(source, **common)
        apply_context_overrides(config, cfg)
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
        model = AutoModelForCausalLM.from_pretrained(source, config=config, dtype=dtype,
                                                     attn_implementation=attn, **common)
    except (OSError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"model.name_or_path: cannot load {cfg.name_or_path!r}"
                          f"{f' (gguf_file {gguf})' if gguf else ''}: {e}") from e
    if tokenizer.pad_token is None:  # batched generation and padding collators need one
        tokenizer.pad_token = tokenizer.eos_token
    if for_training:
        model.train()
        if gguf:
            _drop_gguf_quantizer(model)
        if cfg.gradient_checkpointing:
            model.config.use_cache = False
            if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.x
                model.activation_checkpointing_enable({"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.eval()
        if device == "auto":
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else None
        if device:
            model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    why = "" if attn in ("flash_attention_2", "sdpa_segments") or cfg.attn_implementation != "auto" else (
        " (flash-attn not installed)" if not flash_attn_available() else
        " (no CUDA)" if not torch.cuda.is_available() else " (dtype is not 16-bit)")
    log.info("model %s%s: %.1fM parameters, dtype %s, attention %s%s, device %s, max positions %d%s",
             cfg.name_or_path, f" [{gguf}]" if gguf else "", n_params / 1e6, str(dtype).replace("torch.", ""),
             attn, why, next(model.parameters()).device, effective_max_positions(model.config),
             ", gradient checkpointing" if for_training and cfg.gradient_checkpointing else "")
    return model, tokenizer
