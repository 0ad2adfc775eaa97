"""Backend ``hf-cb``: transformers' continuous batching (paged attention) behind the ``hf`` interface.

Usage::

    backend = make_backend("hf-cb", ModelConfig(name_or_path="tiny"))
    outs = backend.generate(prompts, SamplingConfig(n=8, temperature=0.7, max_new_tokens=256))

Each prompt is one request of transformers' ``ContinuousBatchingManager`` (``model.init_continuous_batching``):
its n samples are forked from the prompt's paged KV cache after prefill (the prompt is computed once),
requests join and leave the running batch at every step, and ``batch_size`` caps the requests per forward.

Sampling. Transformers' continuous batching draws every token of every request from the one global torch
RNG (seeded once per manager, ``ContinuousBatchingConfig.seed``), so its samples depend on how requests
happen to be scheduled together: seeded as a whole run at best, never per sample. This backend does not use
that draw: it installs a CB logits processor that picks each request's token itself with the generator of
its (prompt, sample index), the seeds and draws of ``hf``. So a sample index maps to one deterministic text,
resuming is exact, and the texts are ``hf``'s wherever the paged and the dense forward round their logits
alike (greedy and seeded outputs are equal on the tiny model, see tests/test_generation_backends.py; bitwise
equal logits are not guaranteed, so a near tie may resolve differently on another model).
Stop strings are checked on each request's generated tail before its next step, which then ends it with an
end token. Not done: CUDA graphs and asynchronous batching (the processor runs Python between steps),
streaming. It runs on CPU (sdpa with dense block masks) at about half the speed of ``hf`` there
(bench/bench_generation.py), and each ``generate`` call pays ~0.5 s of manager start/stop (its gc.collect).
"""
from __future__ import annotations

import logging
import math

import torch
from transformers import GenerationConfig, LogitsProcessorList

try:  # transformers >= 5 (continuous batching with per-request logits processors)
    from transformers import ContinuousBatchingConfig
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingLogitsProcessor, ContinuousBatchingLogitsProcessorList)
    from transformers.generation.continuous_batching.utils import WorkloadHints
    _MISSING = None
except ImportError as e:  # CBBackend() says so
    ContinuousBatchingLogitsProcessor, _MISSING = object, e

from domainspec.common.models.generation import Completions, HFBackend, StopCheck, sample_rows, sample_seed
from domainspec.common.models.sampling import SamplingConfig

log = logging.getLogger(__name__)

CHILD = "__child#"  # transformers names the j-th fork of request r "r__child#j"
PAGE_SIZE = 32  # tokens per cache page: short math/code samples waste little of a page


def request_row(request_id: str) -> tuple[int, int]:
    """(prompt index, sample position) of a request: the parent is sample 0, its fork j is sample j + 1."""
    parent, _, child = request_id.partition(CHILD)
    return int(parent), int(child) + 1 if child else 0


def generated_tokens(state) -> list[int]:
    """A running request's generated tokens (an evicted and re-queued request keeps its earlier ones in its prompt)."""
    if state._true_initial_tokens:
        return state.initial_tokens[state._true_initial_tokens:] + state.generated_tokens
    return state.generated_tokens


class SeededPicker(ContinuousBatchingLogitsProcessor):
    """Picks each request's next token: argmax or a draw from the request's own seeded generator, or an end token
    once its text holds a stop string. Returns one-hot scores, so CB's greedy step (do_sample=False) keeps it."""

    supported_kwargs: dict[str, type] = {}
    ignored_kwargs: tuple[str, ...] = ()

    def __init__(self, seeds: dict[str, int], params: SamplingConfig, stop_hit: StopCheck, end_token: int):
        self.seeds, self.params, self.stop_hit, self.end_token = seeds, params, stop_hit, end_token
        self.slots: dict[str, int] = {}  # request id -> its row in self.generators
        self.generators: list[torch.Generator] = []

    def _slot(self, request_id: str) -> int:
        if request_id not in self.slots:
            self.slots[request_id] = len(self.generators)
            self.generators.append(torch.Generator().manual_seed(self.seeds[request_id]))
        return self.slots[request_id]

    def fill_defaults(self, int32_tensor: torch.Tensor) -> None:
        int32_tensor.fill_(-1)  # padding rows (never scheduled here: no CUDA graphs) end at once

    def prepare_tensor_args(self, requests_with_new_token) -> torch.Tensor:
        # Runs on the host before the forward: row j of the scores is requests_with_new_token[j]. A slot s >= 0
        # picks a token; -1 - s ends request s (its text already holds a stop string).
        slots = []
        for future in requests_with_new_token:
            s = self._slot(future.state.request_id)
            slots.append(-1 - s if self.stop_hit(generated_tokens(future.state)) else s)
        return torch.tensor(slots, dtype=torch.int32)

    def __call__(self, scores: torch.Tensor, tensor_arg: torch.Tensor) -> torch.Tensor:
        slots = tensor_arg[: scores.size(0)].tolist()
        picks = [self.end_token] * len(slots)
        rows = [j for j, s in enumerate(slots) if s >= 0]
        if rows:
            if self.params.temperature == 0:
                tokens = scores[rows].argmax(-1).tolist()
            else:
                tokens = sample_rows(scores[rows], [self.generators[slots[j]] for j in rows],
                                     self.params.temperature, self.params.top_p)
            for j, tok in zip(rows, tokens):
                picks[j] = tok
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(len(picks), device=scores.device), torch.tensor(picks, device=scores.device)] = 0.0
        return out


def _processor_list(picker: SeededPicker | None) -> ContinuousBatchingLogitsProcessorList:
    """The manager's processors: only ours (none for plain greedy), whatever the model's generation_config says."""
    processors = ContinuousBatchingLogitsProcessorList(LogitsProcessorList([picker] if picker else []))
    # transformers counts the argument rows of per-request processors only when it converts its own warpers
    processors.tensors_required = 1 if picker else 0
    return processors


class CBBackend(HFBackend):
    """``hf`` with the decode loop replaced by transformers' ContinuousBatchingManager."""

    def __init__(self, model, tokenizer):
        import transformers

        if _MISSING is not None or not callable(getattr(model, "init_continuous_batching", None)):
            why = _MISSING or f"{type(model).__name__} has no init_continuous_batching"
            raise RuntimeError(f"backend 'hf-cb': transformers {transformers.__version__} offers no continuous "
                               f"batching here ({why}); use backend 'hf'")
        attn = model.config._attn_implementation
        if attn not in ("sdpa", "eager", "paged|eager") and "flash" not in attn:
            raise RuntimeError(f"backend 'hf-cb': attention {attn!r} is not supported by continuous batching "
                               "(sdpa, eager or flash_attention_*); load the model with one of them or use 'hf'")
        super().__init__(model, tokenizer)
        log.info("hf-cb: transformers continuous batching on %s; each sample is drawn with its own (prompt, sample "
                 "index) generator, as in 'hf' (not CB's one run-wide RNG), so samples are deterministic and "
                 "resumable", next(model.parameters()).device)

    def _cb_config(self, params: SamplingConfig, longest: int, n_requests: int,
                   per_prompt: int) -> "ContinuousBatchingConfig":
        per_request = math.ceil((longest + params.max_new_tokens) / PAGE_SIZE) + 1
        # CB forks a request's samples together after its prefill; with fewer batch slots than samples
        # (transformers 5.24, batch 3 with n=4) one forked sample drew a token on another sample's logits
        batch = max(params.batch_size, per_prompt)
        running = min(n_requests, batch)
        return ContinuousBatchingConfig(
            page_size=PAGE_SIZE,
            # room for the running requests and as many queued ones (waiting requests are prefilled ahead);
            # CB evicts and re-queues a request when its cache runs out, without changing its text
            num_blocks=2 * running * per_request,
            max_batch_tokens=max(512, 2 * longest),
            max_requests_per_batch=batch,
            use_cuda_graph=False, use_async_batching=False)  # our processor runs Python between steps

    def _start(self, params: SamplingConfig, per_prompt: int, longest: int, n_requests: int, ends: list[int],
               picker: SeededPicker | None):
        """A started ContinuousBatchingManager forking ``per_prompt`` samples per request, with only our processor."""
        gen_cfg = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, eos_token_id=ends,
                                   pad_token_id=self.tokenizer.pad_token_id)
        # CB forks this many samples per request; set after validation, which refuses it without do_sample, yet
        # the picker samples and CB's argmax over its one-hot scores must not draw again
        gen_cfg.num_return_sequences = per_prompt
        manager = self.model.init_continuous_batching(
            generation_config=gen_cfg,
            continuous_batching_config=self._cb_config(params, longest, n_requests, per_prompt),
            workload_hints=WorkloadHints(max_prompt_length=longest, max_generated_length=params.max_new_tokens,
                                         num_requests=n_requests))
        manager.logit_processor = _processor_list(picker)  # before start(): the batch processor takes it there
        with torch.inference_mode():  # start() runs the loop thread in the caller's inference mode
            manager.start()
        return manager

    def _run_rows(self, rows, prompts, encoded, starts, params, done: Completions) -> int:
        if not rows:
            return 0
        per_prompt = 1 if params.temperature == 0 else params.n
        order = list(dict.fromkeys(i for i, _ in rows))  # longest prompts first
        seeds = {str(i) if k == 0 else f"{i}{CHILD}{k - 1}": sample_seed(params.seed, prompts[i], starts[i] + k)
                 for i in order for k in range(per_prompt)}
        ends = sorted(self._ends())
        picker = (None if params.temperature == 0 and not params.stop else
                  SeededPicker(seeds, params, StopCheck(self.tokenizer, params.stop), ends[0]))
        manager = self._start(params, per_prompt, max(len(encoded[i]) for i in order), len(seeds), ends, picker)
        pending, n_tokens = len(seeds), 0
        try:
            for i in order:
                manager.add_request(encoded[i], request_id=str(i), max_new_tokens=params.max_new_tokens,
                                    eos_token_id=ends)
            while pending:
                result = manager.get_result(timeout=1)
                if result is None:
                    if not manager.is_running():
                        raise RuntimeError(f"hf-cb: the continuous batching loop stopped with {pending} samples left")
                    continue
                if not result.is_finished():
                    continue
                if result.error is not None:
                    raise RuntimeError(f"hf-cb: request {result.request_id} failed: {result.error}")
                text, used = self._text(result.generated_tokens, params.stop)
                n_tokens, pending = n_tokens + used, pending - 1
                done.add(*request_row(result.request_id), text)
        finally:
            manager.stop(block=True, timeout=60, hard_stop=pending > 0)
            manager.destroy()
        return n_tokens
