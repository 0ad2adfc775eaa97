"""The one sampling config: how many completions, how random, how long, in what batches.

Every stage config and CLI that generates text composes :class:`SamplingConfig` (as a
``sampling:`` section with the stage's own defaults, :func:`sampling_section`) and hands it to a generation backend as it is
(``backend.generate(prompts, sampling)``): there is no second set of knobs and no hand mapping.
The CLIs get their flags from the fields here (:func:`add_sampling_args`), so the help text is
the field documentation below.

Usage::

    cfg = SamplingConfig(n=4, temperature=0.7, max_new_tokens=256)
    outs = backend.generate(prompts, cfg)          # per prompt, 4 completions
    greedy = cfg.greedy()                          # n=1, temperature 0, the rest unchanged
"""
from __future__ import annotations

import argparse
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from domainspec.common.config import Config

Backend = Literal["hf", "hf-cb", "openai"]
BACKENDS: tuple[str, ...] = ("hf", "hf-cb", "openai")


class ServerConfig(Config):
    """OpenAI-compatible servers for ``backend: openai`` (``vllm serve``, SGLang, ``transformers serve``, TGI)."""

    base_urls: list[str] = Field(default_factory=list, description="Server base URLs (``http://host:8000/v1``); "
                                 "several form a fleet, balanced by outstanding requests.")
    model: str | None = Field(None, description="The model name the servers serve (default: the stage's model "
                                                "path as given); a server serving another model is an error.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key "
                                                           "(unset: no key is sent).")
    max_concurrency: int = Field(16, ge=1, description="Requests in flight per server.")
    timeout_s: float = Field(600.0, gt=0, description="Per-request timeout in seconds.")
    max_retries: int = Field(5, ge=0, description="Retries with exponential backoff on 429/5xx and connection errors.")


class SamplingConfig(Config):
    n: int = Field(1, ge=1, description="Completions per prompt.")
    temperature: float = Field(0.0, ge=0.0, description="Sampling temperature; 0 = greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass (1 = off).")
    max_new_tokens: int = Field(512, ge=1, description="Tokens generated per completion (per generation call in TIR).")
    seed: int = Field(0, description="Sampling seed; each (prompt, sample index) draws from its own seeded "
                                     "generator, so a sample does not depend on batching or resuming.")
    batch_size: int = Field(8, ge=1, description="Sequences (prompt x sample) per generation batch.")
    stop: list[str] = Field(default_factory=list, description="A completion is cut before the first of these "
                                                              "strings (benchmarks add their own).")
    backend: Backend = Field("hf", description="Generation engine: 'hf' (transformers generate, each prompt "
                             "computed once for its n samples), 'hf-cb' (transformers continuous batching), "
                             "'openai' (a client of OpenAI-compatible servers, see server).")
    server: ServerConfig = Field(default_factory=ServerConfig, description="The servers of backend 'openai'.")
    workers: int = Field(1, ge=1, description="Local generation processes for 'hf' / 'hf-cb' (one per GPU, or a "
                         "share of the CPU cores each); the prompts are split among them and the completions are "
                         "those of one process. Under a launcher keep 1: its ranks split the prompts.")

    @model_validator(mode="after")
    def _server_for_openai(self) -> "SamplingConfig":
        if self.backend == "openai" and not self.server.base_urls:
            raise ValueError("backend 'openai' needs server.base_urls (e.g. [http://127.0.0.1:8000/v1])")
        if self.backend == "openai" and self.workers > 1:
            raise ValueError("workers > 1 is for the in-process backends; backend 'openai' sets its parallelism "
                             "with server.max_concurrency and server.base_urls")
        return self

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(not s for s in v):
            raise ValueError("empty stop string")
        return v

    def replace(self, **changes: Any) -> "SamplingConfig":
        """A validated copy with ``changes`` applied."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def greedy(self) -> "SamplingConfig":
        """One greedy completion per prompt, everything else unchanged."""
        return self.replace(n=1, temperature=0.0)


def sampling_section(description: str, **defaults: Any) -> Any:
    """The type of a stage's ``sampling:`` field with that stage's own defaults.

    A partial section in YAML (``sampling: {n: 4}``) keeps the stage's defaults for the fields it
    does not name, instead of falling back to :class:`SamplingConfig`'s. Use it as an annotation::

        MATH_EVAL_SAMPLING = sampling_section("the k samples", n=4, temperature=0.7)
        class MathEvalConfig(Config):
            sampling: MATH_EVAL_SAMPLING
    """
    base = SamplingConfig(**defaults)

    def over_defaults(value: Any) -> Any:
        return {**base.model_dump(), **value} if isinstance(value, dict) else value

    doc = f"{description} Defaults here: {', '.join(f'{k}={v}' for k, v in defaults.items()) or 'as SamplingConfig'}."
    return Annotated[SamplingConfig, BeforeValidator(over_defaults),
                     Field(default_factory=lambda: base.model_copy(deep=True), description=doc)]


# CLI flag of each field (``--max-new-tokens``); ``stop`` is not a flag (benchmarks own their stops), the
# server section has flags of its own (--server-url, --served-model)
_FLAGS = {name: "--" + name.replace("_", "-") for name in SamplingConfig.model_fields if name not in ("stop", "server")}


def add_sampling_args(parser: argparse.ArgumentParser, defaults: SamplingConfig | None = None) -> None:
    """Add ``--n --temperature --top-p --max-new-tokens --seed --batch-size`` with the fields' docs as help."""
    defaults = defaults or SamplingConfig()
    group = parser.add_argument_group("sampling")
    for name, flag in _FLAGS.items():
        field = SamplingConfig.model_fields[name]
        kind = {"choices": BACKENDS} if name == "backend" else {"type": field.annotation}
        group.add_argument(flag, dest=f"sampling_{name}", metavar=name.upper(), default=getattr(defaults, name),
                           help=f"{field.description} (default {getattr(defaults, name)})", **kind)
    group.add_argument("--server-url", dest="sampling_server_urls", action="append", default=None, metavar="URL",
                       help=ServerConfig.model_fields["base_urls"].description + " Repeat for a fleet.")
    group.add_argument("--served-model", dest="sampling_served_model", default=None, metavar="NAME",
                       help=ServerConfig.model_fields["model"].description)


def sampling_from_args(args: argparse.Namespace, **fixed: Any) -> SamplingConfig:
    """The :class:`SamplingConfig` of parsed :func:`add_sampling_args` flags (a bad value names its flag)."""
    values = {name: getattr(args, f"sampling_{name}") for name in _FLAGS}
    server = {k: v for k, v in (("base_urls", getattr(args, "sampling_server_urls", None)),
                                ("model", getattr(args, "sampling_served_model", None))) if v}
    if server:
        values["server"] = server
    try:
        return SamplingConfig(**values, **fixed)
    except ValueError as e:
        bad = ", ".join(_FLAGS.get(str(err["loc"][0]), str(err["loc"][0])) for err in getattr(e, "errors", lambda: [])())
        raise SystemExit(f"error: bad sampling flag {bad}: {e}") from None
