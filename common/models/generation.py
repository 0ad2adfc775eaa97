"""Text generation behind a small backend interface (transformers now; vLLM is a later backend).

Usage::

    backend = make_backend("hf", ModelConfig(name_or_path="tiny"))
    prompt = backend.apply_chat_template([{"role": "user", "content": "2+2?"}])
    outs = backend.generate([prompt], SamplingConfig(max_new_tokens=64, n=4, temperature=0.7, stop=["\\n\\n"]))
    # outs[0] is a list of 4 completions, each cut before the first stop string

Prompts are final strings (chat template already applied), so tool-integrated
reasoning can append tool output to a prompt and continue generating.
``HFBackend`` batches (prompt, sample) rows sorted by prompt length with left
padding and runs its own decode loop over the model's forward: each distinct
prompt of a batch is prefilled once and its KV cache copied to its sample rows
(the n samples of a prompt no longer recompute it), keys and values are
appended in place instead of concatenated, and finished rows leave the batch.
A row is finished by EOS, by the chat template's end-of-turn token (added to
the EOS ids whatever the model's generation_config says) or by a stop string.
Sampling draws each (prompt, sample_index) from its own seeded generator (one
uniform per token, :func:`draw_tokens`), so a sample does not depend on batch
size, batch neighbours or on resuming; tests/test_generation_backends.py keeps
a per-row ``model.generate`` path with the same draw as the reference.
``hf-cb`` (transformers' continuous batching) is in
:mod:`domainspec.common.models.continuous_batching`. It does not do beam
search or speculative decoding.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import time
from typing import Callable, Protocol, Sequence

from domainspec.common.models.sampling import SamplingConfig

log = logging.getLogger(__name__)

# End-of-turn tokens of common chat templates (Qwen/SmolLM2 ChatML, Llama 3, Gemma, Phi-3). SFT models whose
# generation_config names only the end-of-text token otherwise never stop after their answer.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


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

    def close(self) -> None:
        """Release what the backend holds beyond memory (worker processes, HTTP connections); idempotent.
        Every backend is also a context manager that closes on exit: ``with make_backend(...) as b:``."""


class Closing:
    """``close()`` (nothing to release by default) and ``with backend:`` for every backend."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_chat(tokenizer, messages: list[dict], owner: str | None = None) -> str:
    """``messages`` through the tokenizer's chat template with the assistant turn opened (every backend's
    ``apply_chat_template``); a tokenizer without a template is an error naming ``owner``."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"tokenizer of {owner or getattr(tokenizer, 'name_or_path', None) or 'the model'} has no "
                         "chat template; use base-style prompts")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def trim_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def sample_seed(seed: int, prompt: str, sample_index: int) -> int:
    """Seed of one (prompt, sample): independent of batching and of which samples ran before."""
    h = hashlib.sha256(f"{seed}\0{sample_index}\0{prompt}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def end_of_turn_ids(tokenizer) -> list[int]:
    """Ids of the end-of-turn tokens the tokenizer's chat template writes (none without a template)."""
    template = str(getattr(tokenizer, "chat_template", None) or "")
    if not template:
        return []
    vocab = tokenizer.get_vocab()
    return [vocab[t] for t in END_OF_TURN_TOKENS if t in template and t in vocab]


class StopCheck:
    """Whether generated tokens hold a stop string; decodes only their tail."""

    def __init__(self, tokenizer, stop: Sequence[str]):
        self.tokenizer, self.stop = tokenizer, list(stop)
        # A stop string of L characters spans at most 4L byte-level tokens (UTF-8 is <= 4 bytes/char).
        self.window = 4 * max((len(s) for s in self.stop), default=0) + 2

    def __call__(self, tokens: Sequence[int]) -> bool:
        if not self.stop:
            return False
        tail = self.tokenizer.decode(tokens[-self.window:], skip_special_tokens=True)
        return any(s in tail for s in self.stop)


def nucleus_probs(scores, temperature: float, top_p: float):
    """Row-wise sampling distribution: softmax(scores / temperature), cut to the smallest set of tokens whose
    mass reaches ``top_p`` (not renormalized: the draw scales by each row's total)."""
    import torch

    probs = torch.softmax(scores.float() / temperature, dim=-1).cpu()
    if top_p < 1.0:
        sorted_p, idx = probs.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(-1) - sorted_p >= top_p
        sorted_p[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, idx, sorted_p)
    return probs


def draw_tokens(probs, generators: Sequence) -> list[int]:
    """One token per row of ``probs`` (unnormalized, non-negative), drawn with that row's own torch.Generator.

    The draw is the exponential race argmax(p / E), E = -log(U), U ~ Uniform[0, 1) per token: exact sampling
    from p (the Gumbel-max trick), and, unlike inversion of the cumulative sum, a draw that float noise in p
    (another batch size, another attention kernel) changes only at a near-tie of the two best ratios. U is
    float64: float32's 24 bits quantize the winner's small E (about 1/V) coarsely enough to make such ties
    common over a large vocabulary. Uniforms, not ``Tensor.exponential_`` (which ``torch.multinomial`` uses):
    the same race at a quarter of the random number generator's cost, which was a quarter of a tiny model's
    CPU decode step.
    """
    import torch

    u = torch.stack([torch.rand(probs.shape[-1], generator=g, dtype=torch.float64) for g in generators])
    return (probs.double() / u.log_().neg_()).argmax(-1).tolist()


def sample_rows(scores, generators: Sequence, temperature: float, top_p: float) -> list[int]:
    """One token per row of ``scores``, drawn with that row's torch.Generator (temperature, then nucleus top-p)."""
    return draw_tokens(nucleus_probs(scores, temperature, top_p), generators)


class Completions:
    """Collects the completions of one ``generate`` call: fills copies of greedy rows, ticks the progress bar
    and calls ``on_done`` once a prompt's n completions are all in."""

    def __init__(self, n_prompts: int, params: SamplingConfig, bar, on_done):
        self.n, self.greedy, self.bar, self.on_done = params.n, params.temperature == 0, bar, on_done
        self.results: list[list[str | None]] = [[None] * params.n for _ in range(n_prompts)]
        self.remaining = [params.n] * n_prompts

    def add(self, i: int, k: int, text: str) -> None:
        copies = range(self.n) if self.greedy else [k]  # greedy samples are identical: decoded once, copied
        for c in copies:
            self.results[i][c] = text
        self.remaining[i] -= len(copies)
        self.bar.update(len(copies))
        if self.remaining[i] == 0 and self.on_done is not None:
            self.on_done(i, list(self.results[i]))


class HFBackend(Closing):
    """Batched generation with a decode loop over the transformers model's forward (prompt computed once).

    The model's generation_config (an instruct checkpoint's top_k, repetition_penalty, ...) plays no part:
    ``SamplingConfig`` alone decides, as when the former generate() path hid it.
    """

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token is None:
                raise ValueError("the tokenizer has neither a pad nor an eos token: batched generation needs one")
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        eos = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
            eos.append(tokenizer.eos_token_id)
        turn_ends = [t for t in end_of_turn_ids(tokenizer) if t not in eos]
        if turn_ends:
            names = ", ".join(f"{tokenizer.convert_ids_to_tokens(t)} (id {t})" for t in turn_ends)
            log.info("generation also stops at the chat template's end-of-turn token %s (not in the model's "
                     "generation_config)", names)
        self.eos_token_ids = eos + turn_ends
        self.last_stats: dict = {}
        accepted = inspect.signature(model.forward).parameters
        # transformers 5.x renamed forward's past_key_values to cache; logits_to_keep=1 spares the prefill's
        # full-vocabulary logits of every prompt position (generate() passes it too)
        self._forward_kwargs = {"use_cache": True, **({"logits_to_keep": 1} if "logits_to_keep" in accepted else {})}
        self._cache_kwarg = "cache" if "cache" in accepted else "past_key_values"

    def apply_chat_template(self, messages: list[dict]) -> str:
        return render_chat(self.tokenizer, messages, getattr(self.model, "name_or_path", None))

    def _encode(self, prompt: str) -> list[int]:
        # A chat-rendered prompt already holds its special tokens; a raw prompt gets the model's
        # usual prefix (BOS for Llama-style tokenizers, nothing for Qwen).
        bos = self.tokenizer.bos_token
        add = not (bos and prompt.startswith(bos))
        return self.tokenizer(prompt, add_special_tokens=add)["input_ids"]

    def _ends(self) -> set[int]:
        """Tokens that end a row: EOS/end-of-turn, and pad (text is cut there, as generate()'s output was)."""
        return set(self.eos_token_ids) | {self.tokenizer.pad_token_id}

    def _text(self, tokens: Sequence[int], stop: Sequence[str]) -> tuple[str, int]:
        """A row's completion (up to its first end token, stop string removed) and the tokens it used."""
        ends, n = self._ends(), len(tokens)
        for j, tok in enumerate(tokens):
            if tok in ends:
                n = j + 1
                break
        text = self.tokenizer.decode(list(tokens[:n]), skip_special_tokens=True)
        return (trim_at_stop(text, stop)[0] if stop else text), n

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
        bar = tqdm(total=len(prompts) * params.n, desc="generating", unit="sample", disable=not progress)
        done = Completions(len(prompts), params, bar, on_done)
        t0 = time.perf_counter()
        from domainspec.common.train.cpu_runtime import cpu_threads_for
        with cpu_threads_for(self.model):
            n_tokens = self._run_rows(rows, prompts, encoded, starts, params, done)
        bar.close()
        dt = time.perf_counter() - t0
        self.last_stats = {"sequences": len(rows), "generated_tokens": n_tokens, "seconds": dt,
                           "tokens_per_second": n_tokens / dt if dt > 0 else 0.0}
        log.info("generated %d sequences, %d tokens in %.1f s (%.1f tokens/s)",
                 len(rows), n_tokens, dt, self.last_stats["tokens_per_second"])
        return done.results  # type: ignore[return-value]

    def _run_rows(self, rows, prompts, encoded, starts, params, done: Completions) -> int:
        """Generate ``rows`` (prompt index, sample index) batch by batch; returns generated tokens."""
        n_tokens = 0
        for b in range(0, len(rows), params.batch_size):
            batch = rows[b:b + params.batch_size]
            distinct = list(dict.fromkeys(i for i, _ in batch))  # each prompt of the batch is computed once
            slot = {i: s for s, i in enumerate(distinct)}
            seeds = [sample_seed(params.seed, prompts[i], starts[i] + k) for i, k in batch]
            texts, used = self._generate_batch([encoded[i] for i in distinct], [slot[i] for i, _ in batch],
                                               seeds, params)
            n_tokens += used
            for (i, k), text in zip(batch, texts):
                done.add(i, k, text)
        return n_tokens

    def _generate_batch(self, prompt_tokens: list[list[int]], row_prompt: list[int], seeds: list[int],
                        params: SamplingConfig) -> tuple[list[str], int]:
        """Completions of rows whose prompt is ``prompt_tokens[row_prompt[r]]``, row r sampled with ``seeds[r]``."""
        import torch

        generators = [torch.Generator().manual_seed(s) for s in seeds] if params.temperature > 0 else None
        with torch.inference_mode():
            first = self._prefill(prompt_tokens, row_prompt, params.max_new_tokens)
            out = self._decode(*first, generators, params)
        texts, used = [], 0
        for tokens in out:
            text, n = self._text(tokens, params.stop)
            texts.append(text)
            used += n
        return texts, used

    def _prefill(self, prompt_tokens: list[list[int]], row_prompt: list[int], max_new_tokens: int):
        """One forward over the distinct prompts, then their keys/values copied to the sample rows: the rows'
        first logits, last positions, attention mask (None without padding) and cache."""
        import torch

        pad, device = self.tokenizer.pad_token_id, next(self.model.parameters()).device
        width = max(len(t) for t in prompt_tokens)
        # left padding: every row's last prompt token sits at the same position
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in prompt_tokens], device=device)
        mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in prompt_tokens], device=device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)  # as generate() derives them
        if bool(mask.all()):
            mask = None  # generate() drops an all-ones mask too: the same attention path, the same numerics
        cache = _appending_cache(self.model, width + max_new_tokens)
        logits = self._forward(ids, mask, positions, cache)
        rows = torch.tensor(row_prompt, device=device)
        cache.batch_select_indices(rows)
        return logits[rows], positions[rows, -1:], None if mask is None else mask[rows], cache

    def _decode(self, logits, positions, mask, cache, generators, params: SamplingConfig) -> list[list[int]]:
        """Each row's generated tokens, up to its end token, stop string or max_new_tokens. Once half the rows
        in the batch are done they leave it (their cache rows are dropped)."""
        import torch

        pad, device = self.tokenizer.pad_token_id, logits.device
        stop_hit, ends = StopCheck(self.tokenizer, params.stop), self._ends()
        out: list[list[int]] = [[] for _ in range(logits.shape[0])]
        live = list(range(len(out)))  # the rows still in the batch tensors, in their order there
        finished: set[int] = set()
        for _ in range(params.max_new_tokens):
            running = [j for j, r in enumerate(live) if r not in finished]
            picks = (logits[running].argmax(-1).tolist() if generators is None else
                     sample_rows(logits[running], [generators[live[j]] for j in running],
                                 params.temperature, params.top_p))
            for j, tok in zip(running, picks):
                r = live[j]
                out[r].append(tok)
                if tok in ends or len(out[r]) >= params.max_new_tokens or stop_hit(out[r]):
                    finished.add(r)
            if len(finished) == len(out):
                break
            if 2 * sum(r in finished for r in live) >= len(live):
                keep = [j for j, r in enumerate(live) if r not in finished]
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                positions, live = positions[index], [live[j] for j in keep]
                mask = None if mask is None else mask[index]
            step = torch.tensor([[out[r][-1] if r not in finished else pad] for r in live], device=device)
            positions = positions + 1
            mask = None if mask is None else torch.cat([mask, mask.new_ones(len(live), 1)], dim=-1)
            logits = self._forward(step, mask, positions, cache)
        return out

    def _forward(self, ids, mask, positions, cache):
        """Float32 logits of the last position of each row, extending ``cache``."""
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         **{self._cache_kwarg: cache}, **self._forward_kwargs)
        return out.logits[:, -1, :].float()


@functools.cache
def _appending_layer():
    from transformers.cache_utils import DynamicLayer

    class AppendingLayer(DynamicLayer):
        """A DynamicLayer that writes new keys/values into room reserved up front: DynamicLayer concatenates,
        copying the whole cache at every token (a third of the tiny model's CPU decode step)."""

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity

        def lazy_initialization(self, key_states, value_states) -> None:
            super().lazy_initialization(key_states, value_states)
            b, h = key_states.shape[:2]
            self._keys = key_states.new_empty(b, h, self.capacity, key_states.shape[-1])
            self._values = value_states.new_empty(b, h, self.capacity, value_states.shape[-1])

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start = self.get_seq_length()
            end = start + key_states.shape[-2]
            self._keys[:, :, start:end] = key_states
            self._values[:, :, start:end] = value_states
            self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            if self.is_initialized:
                end = self.get_seq_length()
                self._keys, self._values = self._keys[indices], self._values[indices]
                self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]

    return AppendingLayer


def _appending_cache(model, capacity: int):
    """A DynamicCache for ``model`` whose full-attention layers append in place (up to ``capacity`` tokens)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache(config=model.config)
    layer = _appending_layer()
    cache.layers = [layer(capacity) if type(x) is DynamicLayer else x for x in cache.layers]
    return cache


def make_backend(name="hf", model_config=None, model=None, tokenizer=None, server=None) -> GenerationBackend:
    """The generation backend ``name`` (or the ``backend`` of a :class:`SamplingConfig`, with its
    ``server`` section and ``workers``): ``hf`` / ``hf-cb`` from a loaded model and tokenizer or a ModelConfig
    (with workers > 1, in that many local processes: :mod:`domainspec.common.models.worker_pool`);
    ``openai`` from the server section and the model's tokenizer (prompts are rendered here, so
    TIR can append tool output and continue; the weights are not loaded)."""
    workers = 1
    if isinstance(name, SamplingConfig):
        name, server, workers = name.backend, server or name.server, name.workers
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
    if workers > 1:
        if model is not None:
            raise ValueError("sampling.workers > 1: each worker process loads the model itself; pass a "
                             "ModelConfig (a path), not a loaded model")
        from domainspec.common.models.worker_pool import WorkerPoolBackend

        return WorkerPoolBackend(name, model_config, workers)
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
