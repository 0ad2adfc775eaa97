"""Text generation behind a small backend interface (transformers now; vLLM is a later backend).

Usage::

    backend = make_backend("hf", ModelConfig(name_or_path="tiny"))
    prompt = backend.apply_chat_template([{"role": "user", "content": "2+2?"}])
    outs = backend.generate([prompt], SamplingConfig(max_new_tokens=64, n=4, temperature=0.7, stop=["\\n\\n"]))
    # outs[0] is a list of 4 completions, each cut before the first stop string

Prompts are final strings (chat template already applied), so tool-integrated
reasoning can append tool output to a prompt and continue generating.
``HFBackend`` batches prompts sorted by length with left padding; a sequence
that hits EOS or a stop string is finished (its row is masked out until the
batch ends). Sampling draws each (prompt, sample_index) from its own seeded
generator, so a sample does not depend on batch size, batch neighbours or on
resuming. It does not do beam search or speculative decoding.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Callable, Protocol, Sequence

from domainspec.common.models.sampling import SamplingConfig

log = logging.getLogger(__name__)


class GenerationBackend(Protocol):
    tokenizer: object

    def generate(self, prompts: Sequence[str], params: SamplingConfig, progress: bool = False,
                 sample_start: Sequence[int] | None = None,
                 on_done: Callable[[int, list[str]], None] | None = None) -> list[list[str]]:
        """Per prompt, ``params.n`` completions (stop string and what follows removed).
        ``sample_start[i]``: sample index of prompt i's first completion (resuming);
        ``on_done(i, completions)`` is called as soon as prompt i's completions are all finished."""

    def apply_chat_template(self, messages: list[dict]) -> str:
        """The model's chat template rendered with the assistant turn opened."""


def trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def sample_seed(seed: int, prompt: str, sample_index: int) -> int:
    """Seed of one (prompt, sample): independent of batching and of which samples ran before."""
    h = hashlib.sha256(f"{seed}\0{sample_index}\0{prompt}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


class _StopOnText:
    """Per-sequence StoppingCriteria on decoded text: a row is done once its generated tail holds a stop string."""

    def __init__(self, tokenizer, stop: Sequence[str], prompt_len: int):
        self.tokenizer, self.stop, self.prompt_len = tokenizer, list(stop), prompt_len
        # A stop string of L characters spans at most 4L byte-level tokens (UTF-8 is <= 4 bytes/char).
        self.window = 4 * max(len(s) for s in self.stop) + 2

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        gen = input_ids[:, self.prompt_len:]
        tails = self.tokenizer.batch_decode(gen[:, -self.window:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in tails], device=input_ids.device)


class _PerRowSampler:
    """LogitsProcessor that samples each row with its own torch.Generator (temperature, top-p) and
    returns one-hot scores, so greedy decoding inside generate() picks exactly that token."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch

        probs = torch.softmax(scores.float() / self.temperature, dim=-1).cpu()
        if self.top_p < 1.0:  # nucleus: keep the smallest set of tokens whose mass reaches top_p
            sorted_p, idx = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p >= self.top_p
            sorted_p[drop] = 0.0
            probs = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
        picks = [torch.multinomial(p, 1, generator=g) for p, g in zip(probs, self.generators)]
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(picks)), torch.cat(picks).to(scores.device)] = 0.0
        return out


class HFBackend:
    """Batched generation with transformers ``generate``."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
            eos.append(tokenizer.eos_token_id)
        self.eos_token_ids = eos
        self.last_stats: dict = {}

    def apply_chat_template(self, messages: list[dict]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"tokenizer of {getattr(self.model, 'name_or_path', 'the model')} has no chat "
                             "template; use base-style prompts")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, prompt: str) -> list[int]:
        # A chat-rendered prompt already holds its special tokens; a raw prompt gets the model's
        # usual prefix (BOS for Llama-style tokenizers, nothing for Qwen).
        bos = self.tokenizer.bos_token
        add = not (bos and prompt.startswith(bos))
        return self.tokenizer(prompt, add_special_tokens=add)["input_ids"]

    def generate(self, prompts: Sequence[str], params: SamplingConfig, progress: bool = False,
                 sample_start: Sequence[int] | None = None,
                 on_done: Callable[[int, list[str]], None] | None = None) -> list[list[str]]:
        from tqdm.auto import tqdm

        greedy = params.temperature == 0
        starts = list(sample_start) if sample_start is not None else [0] * len(prompts)
        if len(starts) != len(prompts):
            raise ValueError(f"sample_start has {len(starts)} entries for {len(prompts)} prompts")
        encoded = [self._encode(p) for p in prompts]
        limit = getattr(self.model.config, "max_position_embeddings", None)
        longest = max((len(e) for e in encoded), default=0)
        if limit and longest + params.max_new_tokens > limit:
            log.warning("longest prompt (%d tokens) + max_new_tokens (%d) exceeds the model's %d positions",
                        longest, params.max_new_tokens, limit)
        # Greedy samples are identical: decode once per prompt and copy.
        rows = [(i, 0 if greedy else k) for i in range(len(prompts)) for k in range(1 if greedy else params.n)]
        rows.sort(key=lambda r: -len(encoded[r[0]]))  # similar lengths together: less padding
        results: list[list[str | None]] = [[None] * params.n for _ in prompts]
        remaining = [params.n] * len(prompts)
        bar = tqdm(total=len(prompts) * params.n, desc="generating", unit="sample", disable=not progress)
        t0 = time.perf_counter()
        from domainspec.common.train.cpu_runtime import cpu_threads_for
        with cpu_threads_for(self.model):
            n_tokens = self._run_rows(rows, prompts, encoded, starts, params, results, remaining, bar, on_done)
        bar.close()
        dt = time.perf_counter() - t0
        self.last_stats = {"sequences": len(rows), "generated_tokens": n_tokens, "seconds": dt,
                           "tokens_per_second": n_tokens / dt if dt > 0 else 0.0}
        log.info("generated %d sequences, %d tokens in %.1f s (%.1f tokens/s)",
                 len(rows), n_tokens, dt, self.last_stats["tokens_per_second"])
        return results  # type: ignore[return-value]

    def _run_rows(self, rows, prompts, encoded, starts, params, results, remaining, bar, on_done) -> int:
        """Generate ``rows`` (prompt index, sample index) batch by batch; returns generated tokens."""
        greedy = params.temperature == 0
        n_tokens = 0
        for b in range(0, len(rows), params.batch_size):
            batch = rows[b:b + params.batch_size]
            seeds = [sample_seed(params.seed, prompts[i], starts[i] + k) for i, k in batch]
            texts, used = self._generate_batch([encoded[i] for i, _ in batch], seeds, params)
            n_tokens += used
            for (i, k), text in zip(batch, texts):
                copies = range(params.n) if greedy else [k]
                for c in copies:
                    results[i][c] = text
                remaining[i] -= len(copies)
                bar.update(len(copies))
                if remaining[i] == 0 and on_done is not None:
                    on_done(i, list(results[i]))
        return n_tokens

    def _generate_batch(self, token_lists: list[list[int]], seeds: list[int],
                        params: SamplingConfig) -> tuple[list[str], int]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        pad = self.tokenizer.pad_token_id
        width = max(len(t) for t in token_lists)
        # left padding: every row's last prompt token sits at the same position
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in token_lists])
        mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in token_lists])
        device = next(self.model.parameters()).device
        gen_cfg = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                                   eos_token_id=self.eos_token_ids, pad_token_id=pad)
        processors = LogitsProcessorList()
        if params.temperature > 0:
            processors.append(_PerRowSampler(seeds, params.temperature, params.top_p))
        criteria = StoppingCriteriaList()
        if params.stop:
            criteria.append(_StopOnText(self.tokenizer, params.stop, width))
        # generate() fills every field left unset in gen_cfg from model.generation_config, and
        # instruct models ship defaults there (top_k, repetition_penalty, ...) that would silently
        # change results: hide it while generating.
        saved, self.model.generation_config = self.model.generation_config, GenerationConfig()
        try:
            with torch.inference_mode():
                out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                          generation_config=gen_cfg, logits_processor=processors,
                                          stopping_criteria=criteria)
        finally:
            self.model.generation_config = saved
        new = out[:, width:].tolist()
        ends = set(self.eos_token_ids) | {pad}
        texts, used = [], 0
        for row in new:
            n = len(row)
            for j, tok in enumerate(row):  # everything after the first EOS is padding
                if tok in ends:
                    n = j + 1
                    break
            used += n
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True)
            texts.append(trim_at_stop(text, params.stop)[0] if params.stop else text)
        return texts, used


def make_backend(name="hf", model_config=None, model=None, tokenizer=None, server=None) -> GenerationBackend:
    """The generation backend ``name`` (or the ``backend`` of a :class:`SamplingConfig`, with its
    ``server`` section): ``hf`` / ``hf-cb`` from a loaded model and tokenizer or a ModelConfig;
    ``openai`` from the server section and the model's tokenizer (prompts are rendered here, so
    TIR can append tool output and continue; the weights are not loaded)."""
    if isinstance(name, SamplingConfig):
        name, server = name.backend, server or name.server
    if name == "vllm":
        raise NotImplementedError(
            "no in-process vLLM backend: run `vllm serve MODEL` (one server per GPU or tensor-parallel "
            "group) and use backend 'openai' with server.base_urls")
    if name not in ("hf", "hf-cb", "openai"):
        raise ValueError(f"unknown generation backend {name!r}; known: 'hf', 'hf-cb', 'openai'")
    if (model is None) != (tokenizer is None) and name != "openai":
        raise ValueError("make_backend: pass both model and tokenizer, or a model_config")
    from domainspec.common.models.loading import ModelConfig

    model_config = model_config or ModelConfig()
    if name == "openai":
        from domainspec.common.models.loading import load_tokenizer
        from domainspec.common.models.openai_backend import OpenAIBackend

        return OpenAIBackend(server, tokenizer or load_tokenizer(model_config),
                             served_model=(server.model if server is not None else None) or model_config.name_or_path)
    if model is None:
        from domainspec.common.models.loading import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(model_config)
    if name == "hf-cb":
        from domainspec.common.models.continuous_batching import CBBackend

        return CBBackend(model, tokenizer)
    return HFBackend(model, tokenizer)
