"""Continued pretraining (CPT): the shared first stage of the Coder and Math recipes.

``run_cpt(cfg, out_dir)`` checks the config against the world (data paths exist, the
model's positions cover ``seq_len``), loads the model and tokenizer
(:mod:`~domainspec.common.models.loading`), builds packed sequences from the mixed, decontaminated,
FIM-transformed sources (:mod:`~domainspec.common.recipes.cpt_data`) and trains them with the one
loop (:func:`domainspec.common.train.loop.train`, :class:`~domainspec.common.train.objectives.CausalLMObjective`).

Usage::

    cfg = load_config(CPTConfig, "cpt.yaml", overrides=["train.max_steps=100"])
    run_cpt(cfg, "runs/cpt")          # or: domainspec cpt --config cpt.yaml --out runs/cpt
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


def build_dataset(cfg: CPTConfig, tokenizer, out_dir: Path, rank: int) -> list:
    """Packed CPT rows; rank 0 builds first (and fills the tokenization cache), then the others."""
    import torch.distributed as dist

    from domainspec.common.recipes.cpt_data import build_cpt_examples
    multi = dist.is_initialized() and dist.get_world_size() > 1
    if multi and rank != 0:
        dist.barrier()
    examples, report = build_cpt_examples(
        cfg.data, tokenizer, seq_len=cfg.seq_len, fim=cfg.fim, decontam=cfg.decontam, seed=cfg.train.seed,
        out_dir=out_dir if rank == 0 else None, cache_dir=out_dir / "cache", max_documents=cfg.max_documents)
    if multi and rank == 0:
        dist.barrier()
    if not examples:
        raise ConfigError(f"data: the corpus is empty after loading, mixing and decontamination "
                          f"(sources: {', '.join(s.path for s in cfg.data)}; report: {report})")
    return examples


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
    dataset = build_dataset(cfg, tokenizer, out_dir, rank)
    attn = model.config._attn_implementation
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    objective = CausalLMObjective(attn, collator=PackedCollator(attn, pad_id=pad))
    result = train(model, tokenizer, dataset, objective, cfg.train, out_dir, resume=resume)
    return {"model": str(result.final_dir), "steps": result.steps, "final_loss": result.final_loss,
            "sequences": len(dataset), "metrics": str(result.metrics_path)}


def _run_stage(cfg: CPTConfig, ctx: StageContext) -> dict[str, Any]:
    return run_cpt(cfg, ctx.out_dir, resume=ctx.resume)


CPT_STAGE = StageType(name="cpt", config_cls=CPTConfig, run=_run_stage, outputs={"model": "final"},
                      distributed=True, description="continued pretraining on mixed, packed corpora")
