"""Continued pretraining (CPT): the shared first stage of the Coder and Math recipes.

``run_cpt(cfg, out_dir)`` checks the config against the world (data paths exist, the
model's positions cover ``seq_len``), loads the model and tokenizer
(:mod:`~domainspec.common.models.loading`), prepares the mixed, decontaminated, FIM-transformed,
packed sequences once as memory-mapped shards (:mod:`~domainspec.common.data.prepare`; reused when
sources and settings are unchanged) and trains them with the one loop
(:func:`domainspec.common.train.loop.train`, :class:`~domainspec.common.train.objectives.CausalLMObjective`).

Usage::

    cfg = load_config(CPTConfig, "cpt.yaml", overrides=["train.max_steps=100"])
    run_cpt(cfg, "runs/cpt")          # or: domainspec cpt --config cpt.yaml --out runs/cpt
    prepare_data(cfg, "runs/cpt")     # or: domainspec cpt prepare --config cpt.yaml (data only, no model weights)
    # GPUs: deepspeed --num_gpus 8 --module domainspec.common.recipes.cpt_cli --config cpt.yaml --out runs/cpt

Defaults follow Qwen2.5-Coder / Qwen2.5-Math CPT: 8K context, code:text:math = 7:2:1,
FIM on code, 10-gram decontamination, constant LR after 3% warmup (see TrainConfig).
The same :class:`CPTConfig` is the ``cpt`` stage of pipelines.yaml (:data:`CPT_STAGE`).
Everything bad is reported before any document is read or any step is taken.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import Field

from domainspec.common.config import Config, ConfigError
from domainspec.common.data.decontam import DecontamConfig
from domainspec.common.data.fim import FIMConfig
from domainspec.common.data.prepare import PrepareConfig
from domainspec.common.models.loading import ModelConfig
from domainspec.common.data.sources import DataSourceConfig
from domainspec.common.pipeline.stages import StageContext, StageType
from domainspec.common.train.loop import TrainConfig

log = logging.getLogger(__name__)


def _default_sources() -> list[DataSourceConfig]:
    # built-in corpora that exist on every machine, mixed code:text:math = 7:2:1 (Qwen2.5-Coder)
    return [DataSourceConfig(path="builtin:stdlib_code", weight=7.0),
            DataSourceConfig(path="builtin:stdlib_docs", weight=2.0),
            DataSourceConfig(path="builtin:math_corpus", weight=1.0)]


class CPTConfig(Config):
    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model to continue pretraining.")
    data: list[DataSourceConfig] = Field(default_factory=_default_sources, description="Training sources; each "
                                         "source's weight is its share of the mix (default code:text:math = 7:2:1, "
                                         "Qwen2.5-Coder).")
    max_documents: int | None = Field(None, ge=1, description="Stop the mix after this many documents.")
    seq_len: int = Field(8192, ge=16, description="Packed sequence length (8192: Qwen2.5-Coder/Math CPT).")
    fim: FIMConfig = Field(default_factory=FIMConfig, description="Fill-in-the-middle rewriting of code documents.")
    decontam: DecontamConfig = Field(default_factory=DecontamConfig,
                                     description="Drop documents sharing an n-gram with a benchmark.")
    prepare: PrepareConfig = Field(default_factory=PrepareConfig, description="Where and how the data is prepared "
                                   "into shards (once; training reads them by memory map).")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Optimizer, schedule, batch, checkpoints.")


def check_sources(cfg: CPTConfig) -> None:
    """Every data source exists (cheap; before anything is loaded)."""
    from domainspec.common.data.sources import check_source
    if not cfg.data:
        raise ConfigError("data: no data sources configured")
    for i, src in enumerate(cfg.data):
        try:
            check_source(src)
        except ConfigError as e:
            raise ConfigError(f"data.{i}.path: {e}") from None


def check_context(cfg: CPTConfig, model_config: Any) -> None:
    """seq_len must fit the model's positions unless the config extends the context (rope_theta / rope_scaling)."""
    from domainspec.common.models.loading import effective_max_positions
    limit = effective_max_positions(model_config)
    if cfg.seq_len <= limit:
        return
    if cfg.model.rope_theta is not None:  # a larger RoPE base is how Qwen extends context during CPT
        log.warning("seq_len %d exceeds the model's %d positions; training the longer context with rope_theta=%g",
                    cfg.seq_len, limit, cfg.model.rope_theta)
        return
    raise ConfigError(
        f"seq_len: {cfg.seq_len} is longer than the {limit} positions model {cfg.model.name_or_path!r} supports. "
        f"Lower seq_len, or extend the context: model.rope_theta (a larger RoPE base, e.g. 1000000) or "
        f"model.rope_scaling (e.g. {{type: yarn, factor: {-(-cfg.seq_len // limit)}.0}}).")


def prepare_data(cfg: CPTConfig, out_dir: str | Path, tokenizer=None):
    """Prepare (or reuse) the shards of ``cfg``'s data; returns (folder, manifest). Loads only the tokenizer."""
    from domainspec.common.data.prepare import prepare
    from domainspec.common.models.loading import load_tokenizer

    check_sources(cfg)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.model)
    root = Path(cfg.prepare.dir).expanduser() if cfg.prepare.dir else Path(out_dir) / "data"
    return prepare(cfg.data, tokenizer, cfg.prepare, root, cfg.seq_len, fim=cfg.fim, decontam=cfg.decontam,
                   seed=cfg.train.seed, max_documents=cfg.max_documents)


def build_dataset(cfg: CPTConfig, tokenizer, out_dir: Path):
    """The prepared shards as a dataset: rank 0 prepares them (or finds them prepared), the other ranks
    wait and open the folder rank 0 names (only rank 0 hashes the sources)."""
    from domainspec.common.data.shards import ShardDataset
    from domainspec.common.data.tokenization import tokenizer_fingerprint
    from domainspec.common.pipeline.ranks import on_rank0
    folder = on_rank0(lambda: str(prepare_data(cfg, out_dir, tokenizer)[0]),
                      failed="rank 0 could not prepare the CPT data", error=ConfigError)
    return ShardDataset(folder, tokenizer=tokenizer_fingerprint(tokenizer))


def run_cpt(cfg: CPTConfig, out_dir: str | Path, resume: bool = True) -> dict[str, Any]:
    """Validate, load, build data, train; returns {"model": final folder, "steps", "final_loss", ...}."""
    from domainspec.common.models.loading import load_model_and_tokenizer
    from domainspec.common.train.objectives import CausalLMObjective
    from domainspec.common.data.packing import PackedCollator
    from domainspec.common.train.loop import init_distributed, train

    out_dir = Path(out_dir)
    check_sources(cfg)
    model, tokenizer = load_model_and_tokenizer(cfg.model, for_training=True)
    check_context(cfg, model.config)
    rank, _, _ = init_distributed()
    if rank == 0:
        cfg.save_resolved(out_dir)
    dataset = build_dataset(cfg, tokenizer, out_dir)
    attn = model.config._attn_implementation
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    objective = CausalLMObjective(attn, collator=PackedCollator(attn, pad_id=pad))
    result = train(model, tokenizer, dataset, objective, cfg.train, out_dir, resume=resume)
    return {"model": str(result.final_dir), "steps": result.steps, "final_loss": result.final_loss,
            "sequences": len(dataset), "metrics": str(result.metrics_path)}


def _run_stage(cfg: CPTConfig, ctx: StageContext) -> dict[str, Any]:
    return run_cpt(cfg, ctx.out_dir, resume=ctx.resume)


def _run_data_stage(cfg: CPTConfig, ctx: StageContext) -> dict[str, Any]:
    folder, manifest = prepare_data(cfg, ctx.out_dir)
    return {"data": str(folder), "sequences": manifest["sequences"], "tokens": manifest["tokens"],
            "documents": manifest["documents"], "packing_efficiency": manifest["packing_efficiency"],
            "dropped": (manifest["decontam"] or {}).get("dropped", 0), "fim_documents": manifest["fim_documents"]}


CPT_STAGE = StageType(name="cpt", config_cls=CPTConfig, run=_run_stage, outputs={"model": "final"},
                      distributed=True, description="continued pretraining on mixed, packed corpora")
# the same CPTConfig: run it with the cpt stage's data settings and prepare.dir, and the cpt stage reuses the shards
CPT_DATA_STAGE = StageType(name="cpt_data", config_cls=CPTConfig, run=_run_data_stage, outputs={"data": "data"},
                           description="prepare CPT data once: mix, decontaminate, FIM, tokenize, pack into shards")
