"""The embedded default model: a tiny Qwen2-architecture LM and its tokenizer.

``build_tiny_model(out_dir)`` writes a Hugging Face folder (``save_pretrained``)
holding a randomly initialized (fixed seed) Qwen2 model and a byte-level BPE
tokenizer trained with the ``tokenizers`` library on the default corpus: a
sample of the Python standard library's own source files plus generated math
text. The tokenizer follows Qwen2's design: the same pre-tokenizer regex
(digits split one by one, which helps arithmetic), byte-level encoding (any
NFC text, so all real code, round-trips exactly), Qwen's special tokens and a ChatML
chat template. Every later stage loads the folder with ``from_pretrained``.

Usage::

    path = build_tiny_model("/tmp/tiny")             # default corpus
    path = build_tiny_model("/tmp/t", texts=["..."])  # a custom corpus (tests)

``domainspec.common.models.loading`` builds it once per recipe into a cache folder
(``ModelConfig(name_or_path="tiny")``). This module does not train the model.
"""
from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

# Bump when the build below changes in a way that changes the folder it writes.
TINY_RECIPE_VERSION = "1"

# Qwen2.5's special tokens (the subset the Coder and Math recipes use), in Qwen's order.
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]

# Qwen2's pre-tokenizer split (tokenizer.json of Qwen/Qwen2.5-*): contractions,
# words with one optional leading symbol, single digits, punctuation runs,
# newlines, whitespace.
QWEN_PRETOKENIZE_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# ChatML, as Qwen2.5 renders it, without Qwen's default system prompt (this is not Qwen).
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Model shape of the default recipe: Qwen2 layout (GQA, SwiGLU, RMSNorm, RoPE with
# Qwen2.5's theta 1e6, tied embeddings as in the 0.5B/1.5B/3B Qwen2.5 models).
TINY_MODEL_DEFAULTS = dict(
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    initializer_range=0.02,
)
TINY_TOKENIZER_DEFAULTS = dict(vocab_size=4096, min_frequency=2)
# Default corpus size: enough for a 4k BPE vocabulary, small enough to train in seconds.
DEFAULT_CORPUS = dict(stdlib_files=400, stdlib_max_bytes=6_000_000, math_docs=2000, math_seed=0)


# ---------------------------------------------------------------- corpus


def default_corpus(stdlib_files: int = DEFAULT_CORPUS["stdlib_files"],
                   stdlib_max_bytes: int = DEFAULT_CORPUS["stdlib_max_bytes"],
                   math_docs: int = DEFAULT_CORPUS["math_docs"],
                   math_seed: int = DEFAULT_CORPUS["math_seed"], chat_docs: int = 0) -> list[str]:
    """Python stdlib source files (up to ``stdlib_files``, 0 = none) plus generated math text.

    ``chat_docs`` > 0 adds that many math problems written as chats (role names, the Qwen2.5-Math
    CoT or TIR system prompt, question, solution), so a math model's BPE merges its chat scaffold
    too: with math text alone the system prompt and role names stay ~50 single-letter tokens of
    every SFT row (measured on the first default math chat: 130 tokens, 95 with the scaffold merged).
    """
    from domainspec.common.data.builtin.corpora import stdlib_code_documents
    from domainspec.common.data.builtin.math_problems import generate_problems, math_corpus_documents
    from domainspec.common.data.builtin.math_prompts import COT_SYSTEM_PROMPT, TIR_SYSTEM_PROMPT

    texts, total = [], 0
    if stdlib_files > 0:
        for doc in stdlib_code_documents(limit=stdlib_files):
            if total + len(doc) > stdlib_max_bytes:
                break
            texts.append(doc)
            total += len(doc)
    texts.extend(itertools.islice(math_corpus_documents(math_docs, math_seed), math_docs))
    for i, p in enumerate(generate_problems(chat_docs, seed=math_seed + 1)):
        system = TIR_SYSTEM_PROMPT if i % 4 == 3 else COT_SYSTEM_PROMPT
        texts.append(f"system\n{system}\nuser\n{p.question}\nassistant\n{p.solution}\n")
    if not texts:
        raise RuntimeError("the tiny-model tokenizer corpus is empty (no stdlib sources and no math documents)")
    return texts


# ---------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int = TINY_TOKENIZER_DEFAULTS["vocab_size"],
                    min_frequency: int = TINY_TOKENIZER_DEFAULTS["min_frequency"],
                    model_max_length: int = TINY_MODEL_DEFAULTS["max_position_embeddings"]):
    """Train a Qwen2-style byte-level BPE and wrap it as a transformers fast tokenizer."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    # NFC as in Qwen2: transformers loads every model_type "qwen2" folder through its
    # Qwen2Tokenizer, which applies NFC, so training must see the same normalization.
    # Byte-level BPE then round-trips any NFC text (all real code) exactly.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in QWEN_SPECIAL_TOKENS if t != "<|endoftext|>"],
        chat_template=CHATML_TEMPLATE,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,  # decoding must give back the exact text
        padding_side="right",
    )


# ---------------------------------------------------------------- model


def build_tiny_model(out_dir: str | os.PathLike, texts: Iterable[str] | None = None, *,
                     seed: int = 0, vocab_size: int = TINY_TOKENIZER_DEFAULTS["vocab_size"],
                     min_frequency: int = TINY_TOKENIZER_DEFAULTS["min_frequency"],
                     **model_overrides) -> Path:
    """Write a tiny random-weight Qwen2 model + trained tokenizer to ``out_dir``; returns the path.

    ``texts``: tokenizer training corpus (default: :func:`default_corpus`).
    ``model_overrides``: Qwen2Config fields replacing :data:`TINY_MODEL_DEFAULTS`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    unknown = set(model_overrides) - set(TINY_MODEL_DEFAULTS)
    if unknown:
        raise TypeError(f"build_tiny_model: unknown model fields {sorted(unknown)}; "
                        f"known: {sorted(TINY_MODEL_DEFAULTS)}")
    shape = {**TINY_MODEL_DEFAULTS, **model_overrides}
    out = Path(out_dir)
    tokenizer = train_tokenizer(default_corpus() if texts is None else texts,
                                vocab_size=vocab_size, min_frequency=min_frequency,
                                model_max_length=shape["max_position_embeddings"])
    eos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    im_end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    # Qwen pads the embedding table beyond the tokenizer; a multiple of 64 keeps matmuls aligned.
    padded_vocab = -(-len(tokenizer) // 64) * 64
    config = Qwen2Config(
        vocab_size=padded_vocab,
        hidden_act="silu",
        use_sliding_window=False,
        attention_dropout=0.0,
        bos_token_id=eos_id,  # as Qwen2.5's config.json: no BOS token is ever prepended
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        **shape,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=eos_id, eos_token_id=[eos_id, im_end_id], pad_token_id=eos_id, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built tiny Qwen2 model at %s: %.2fM parameters, vocab %d (embedding rows %d), "
             "%d layers, hidden %d", out, n_params / 1e6, len(tokenizer), padded_vocab,
             shape["num_hidden_layers"], shape["hidden_size"])
    return out
