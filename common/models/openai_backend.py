"""Generation backend ``openai``: a client of OpenAI-compatible servers (``vllm serve``, SGLang,
``transformers serve``, TGI) through the ``openai`` package.

Usage::

    server = ServerConfig(base_urls=["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1"],
                          model="Qwen/Qwen2.5-Math-7B-Instruct")
    backend = OpenAIBackend(server, load_tokenizer(ModelConfig(name_or_path="Qwen/Qwen2.5-Math-7B-Instruct")))
    outs = backend.generate(prompts, SamplingConfig(n=4, temperature=0.7, max_new_tokens=512))

(``make_backend(sampling_config, model_config)`` builds it when ``sampling.backend`` is ``openai``.)

Prompts are final strings, rendered here with the local tokenizer's chat template, and go to the
legacy completions endpoint (``/v1/completions``) as raw text, so TIR can append tool output and
continue. The server tokenizes them: serve the same model folder the tokenizer comes from.

Samples: one request per sample (``n=1``) with ``seed = sample_seed(seed, prompt, sample index)``, so
a sample depends neither on batching, on the fleet's size nor on resuming (the same rule as
``HFBackend``), and servers that ignore ``n`` (``transformers serve``) still give n samples; servers with
prefix caching (vLLM, SGLang) compute the shared prompt once. Greedy prompts are asked once and the
completion copied n times. Whether a server honours ``seed``, ``temperature`` and ``top_p`` is up to the
server (vLLM and SGLang do; ``transformers serve`` answers greedily); the text is cut before the first
stop string here too, since some servers keep the stop string in the text.

Transport: up to ``max_concurrency`` requests in flight per server (a thread pool), each sent to the
server with the fewest requests in flight. The ``openai`` client retries 408/409/429/5xx answers,
connection errors and timeouts with exponential backoff (0.5 s doubling up to 8 s, jittered; a
``Retry-After`` header is honoured) up to ``max_retries`` times, on the same server; each attempt is
limited to ``timeout_s``. Construction asks every server's ``/models`` first (one retry, at most 30 s),
so a server that is down or serves another model fails before any sample is written.

Not done here: streaming, the chat endpoint, moving a failed request to another server of the fleet,
keeping a server from adding its BOS token to a prompt whose text already starts with it (``HFBackend``
does; Qwen has no BOS).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, Sequence

from domainspec.common.config import ConfigError
from domainspec.common.models.generation import Closing, render_chat, sample_seed, trim_at_stop
from domainspec.common.models.sampling import SamplingConfig, ServerConfig

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 30.0  # the /models check at construction: a live server answers at once


class ServerCheckError(ConfigError):
    """A configured server cannot be used (down, refusing, or serving another model); raised at construction."""


class ServerRequestError(RuntimeError):
    """A completions request failed for good (not retryable, or still failing after the retries)."""


class _Server:
    def __init__(self, url: str, config: ServerConfig):
        from openai import Omit, OpenAI

        key = os.environ.get(config.api_key_env)
        self.url = url.rstrip("/")
        # The client refuses to start without a key: without one it gets a placeholder, and every request
        # omits the Authorization header (ServerConfig.api_key_env: "unset: no key is sent").
        self.client = OpenAI(base_url=self.url, api_key=key or "unset", timeout=config.timeout_s,
                             max_retries=config.max_retries)
        self.headers = {} if key else {"Authorization": Omit()}
        self.in_flight = 0


class _Fleet:
    """The servers, and a slot on the least busy one (at most ``per_server`` requests each)."""

    def __init__(self, servers: list[_Server], per_server: int):
        self.servers, self.per_server = servers, per_server
        self._free = threading.Condition()

    @contextlib.contextmanager
    def slot(self):
        with self._free:
            while True:
                server = min(self.servers, key=lambda s: s.in_flight)
                if server.in_flight < self.per_server:
                    break
                self._free.wait()
            server.in_flight += 1
        try:
            yield server
        finally:
            with self._free:
                server.in_flight -= 1
                self._free.notify()


@dataclass
class _Answer:
    """One sample as a server answered it."""
    text: str  # cut before the first stop string
    finish_reason: str
    tokens: int | None  # generated tokens as the server counted them (None: it did not say)
    retries: int
    server_text: str
    logprobs: dict | None = None


def _retryable(error: Exception) -> bool:
    """What the openai client retries: 408/409/429/5xx answers, connection errors and timeouts."""
    status = getattr(error, "status_code", None)
    return status is None or status in (408, 409, 429) or status >= 500


def _describe(error: Exception) -> str:
    """An openai client error in a few words: status and the server's message, or the network cause."""
    from openai import APIConnectionError, APIStatusError, APITimeoutError

    if isinstance(error, APIStatusError):
        body = error.body
        if isinstance(body, dict):  # vLLM/OpenAI put it in "message", FastAPI servers in "detail"
            body = body.get("message") or body.get("detail") or body
        return f"HTTP {error.status_code}: {body or error.message}"
    if isinstance(error, APITimeoutError):
        return "timed out"
    if isinstance(error, APIConnectionError):
        return f"connection failed ({error.__cause__ or error})"
    return f"{type(error).__name__}: {error}"


class OpenAIBackend(Closing):
    """``GenerationBackend`` over OpenAI-compatible completions servers (see the module docstring)."""

    def __init__(self, server: ServerConfig | None, tokenizer, served_model: str | None = None):
        if server is None or not server.base_urls:
            raise ConfigError("sampling.server.base_urls: backend 'openai' needs at least one server URL "
                              "(e.g. http://127.0.0.1:8000/v1)")
        self.config, self.tokenizer = server, tokenizer
        self.served_model = served_model or server.model
        if not self.served_model:
            raise ConfigError("sampling.server.model: backend 'openai' needs the name of the served model")
        self.fleet = _Fleet([_Server(url, server) for url in server.base_urls], server.max_concurrency)
        for name in ("httpx", "httpx2"):  # the HTTP layer logs every request at INFO: thousands of lines a run
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)
        self.last_stats: dict = {}
        self.last_logprobs: list[list[dict | None]] | None = None
        self._check_servers()

    def close(self) -> None:
        """Close every server's HTTP connection pool."""
        for server in self.fleet.servers:
            server.client.close()

    # ------------------------------------------------------------ construction

    def _check_servers(self) -> None:
        """Every server answers /models and lists the served model; else one error naming each bad URL."""
        with ThreadPoolExecutor(max_workers=len(self.fleet.servers)) as pool:
            problems = [p for p in pool.map(self._problem_of, self.fleet.servers) if p]
        if problems:
            raise ServerCheckError(f"sampling.server.base_urls: {len(problems)} of {len(self.fleet.servers)} "
                                   "server(s) cannot be used:\n  " + "\n  ".join(problems))
        log.info("openai backend: %d server(s) serving %s, up to %d requests in flight each",
                 len(self.fleet.servers), self.served_model, self.config.max_concurrency)

    def _problem_of(self, server: _Server) -> str | None:
        from openai import APIConnectionError, APIStatusError

        probe = server.client.with_options(max_retries=min(1, self.config.max_retries),
                                           timeout=min(PROBE_TIMEOUT_S, self.config.timeout_s))
        try:
            served = [m.id for m in probe.models.list(extra_headers=server.headers).data]
        except APIConnectionError as e:
            return f"{server.url}: not reachable, {_describe(e)}; is the server running?"
        except APIStatusError as e:
            no_v1 = e.status_code == 404 and not server.url.endswith("/v1")
            hint = " (a base URL usually ends in /v1)" if no_v1 else ""
            return f"{server.url}: GET {server.url}/models answered {_describe(e)}{hint}"
        if self.served_model not in served:
            return (f"{server.url} does not serve the model {self.served_model!r}; it serves {served} "
                    "(set sampling.server.model / --served-model to the served name)")
        return None

    # ------------------------------------------------------------ the backend interface

    def apply_chat_template(self, messages: list[dict]) -> str:
        return render_chat(self.tokenizer, messages)

    def generate(self, prompts: Sequence[str], params: SamplingConfig, progress: bool = False,
                 sample_start: Sequence[int] | None = None,
                 on_done: Callable[[int, list[str]], None] | None = None,
                 logprobs: int | None = None) -> list[list[str]]:
        """Per prompt, ``params.n`` completions, as ``GenerationBackend.generate``. ``params.batch_size``
        is not used (the servers batch). ``logprobs``: ask the servers for that many top log-probabilities
        per token and keep each sample's (the server's own text, before the local stop cut) in
        ``last_logprobs[i][k]``."""
        from tqdm.auto import tqdm

        starts = list(sample_start) if sample_start is not None else [0] * len(prompts)
        if len(starts) != len(prompts):
            raise ValueError(f"sample_start has {len(starts)} entries for {len(prompts)} prompts")
        greedy = params.temperature == 0
        per_prompt = 1 if greedy else params.n  # greedy samples are identical: ask once, copy
        jobs = [(i, k) for i in range(len(prompts)) for k in range(per_prompt)]
        results: list[list[str | None]] = [[None] * params.n for _ in prompts]
        self.last_logprobs = [[None] * params.n for _ in prompts] if logprobs else None
        remaining = [per_prompt] * len(prompts)
        totals: Counter = Counter()
        finish: Counter = Counter()
        bar = tqdm(total=len(prompts) * params.n, desc="generating", unit="sample", disable=not progress)
        t0 = time.perf_counter()
        capacity = len(self.fleet.servers) * self.config.max_concurrency
        pool = ThreadPoolExecutor(max_workers=max(1, min(len(jobs), capacity)))
        futures = {pool.submit(self._complete, prompts[i], params, sample_seed(params.seed, prompts[i], starts[i] + k),
                               logprobs): (i, k) for i, k in jobs}
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: futures[f]):  # the caller sees prompts in order where it can
                    i, k = futures[fut]
                    try:
                        answer: _Answer = fut.result()
                    except ServerRequestError as e:
                        raise ServerRequestError(f"prompt {i} (sample {starts[i] + k}): {e}") from e.__cause__
                    copies = range(params.n) if greedy else [k]
                    for c in copies:
                        results[i][c] = answer.text
                        if self.last_logprobs is not None:
                            self.last_logprobs[i][c] = answer.logprobs
                    finish[answer.finish_reason] += 1
                    # counted here, not in the request threads: a tokenizer is not to be shared across threads
                    tokens = answer.tokens if answer.tokens is not None else \
                        len(self.tokenizer(answer.server_text, add_special_tokens=False)["input_ids"])
                    totals.update(tokens=tokens, retries=answer.retries)
                    remaining[i] -= 1
                    bar.update(len(copies))
                    if remaining[i] == 0 and on_done is not None:
                        on_done(i, list(results[i]))  # type: ignore[arg-type]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # requests in flight end with their timeout
            raise
        finally:
            bar.close()
        pool.shutdown()
        dt = time.perf_counter() - t0
        self.last_stats = {"sequences": len(jobs), "generated_tokens": totals["tokens"], "seconds": dt,
                           "tokens_per_second": totals["tokens"] / dt if dt > 0 else 0.0,
                           "finish_reasons": dict(finish), "retries": totals["retries"]}
        log.info("generated %d sequences, %d tokens in %.1f s (%.1f tokens/s) on %d server(s); finish %s, %d retries",
                 len(jobs), totals["tokens"], dt, self.last_stats["tokens_per_second"], len(self.fleet.servers),
                 dict(finish), totals["retries"])
        return results  # type: ignore[return-value]

    # ------------------------------------------------------------ one request

    def _complete(self, prompt: str, params: SamplingConfig, seed: int, logprobs: int | None) -> _Answer:
        """One sample of ``prompt``, from the least busy server (runs in a request thread)."""
        from openai import OpenAIError

        request = dict(model=self.served_model, prompt=prompt, n=1, max_tokens=params.max_new_tokens,
                       temperature=params.temperature, top_p=params.top_p, seed=seed)
        if params.stop:
            request["stop"] = list(params.stop)
        if logprobs:
            request["logprobs"] = logprobs
        with self.fleet.slot() as server:
            try:
                raw = server.client.completions.with_raw_response.create(**request, extra_headers=server.headers)
                completion = raw.parse()
            except OpenAIError as e:
                tries = f"after {self.config.max_retries} retries" if _retryable(e) else "not retried"
                raise ServerRequestError(f"{server.url}: completions request failed ({tries}): "
                                         f"{_describe(e)}") from e
        if not completion.choices:
            raise ServerRequestError(f"{server.url}: a completions answer without choices")
        choice = completion.choices[0]
        text, stopped = trim_at_stop(choice.text, params.stop) if params.stop else (choice.text, False)
        usage = completion.usage
        return _Answer(text=text, finish_reason="stop" if stopped else (choice.finish_reason or "unknown"),
                       tokens=usage.completion_tokens if usage is not None else None,
                       retries=getattr(raw, "retries_taken", 0), server_text=choice.text,
                       logprobs=choice.logprobs.model_dump() if logprobs and choice.logprobs is not None else None)
