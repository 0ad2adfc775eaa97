"""Stage types the pipeline runner knows, and the contract each one follows.

A stage type is a typed config class plus ``run(config, ctx) -> dict`` and the
relative paths of the artifacts it writes under its stage folder. Types are
registered here by *string* (``module:attribute``) and imported only when a
pipeline uses them, so the engine never imports a domain at import time
(imports flow common <- eval <- coder, math). A registration that does not
resolve raises: a broken stage type never silently disappears.
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from domainspec.common.config import Config

log = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a running stage gets besides its own config: where to write, who it is."""

    out_dir: Path
    pipeline: str
    stage: str
    resume: bool = True
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageType:
    name: str
    config_cls: type[Config]
    run: Callable[[Any, StageContext], Mapping[str, Any]]
    # output name -> path relative to the stage folder, e.g. {"model": "final"}
    outputs: Mapping[str, str]
    # training stages may be launched with deepspeed/torchrun/slurm; others always run locally
    distributed: bool = False
    description: str = ""


# type name -> "module:attribute" of a StageType
STAGE_TYPES: dict[str, str] = {
    "cpt": "domainspec.common.recipes.cpt:CPT_STAGE",
    "sft": "domainspec.common.recipes.sft:SFT_STAGE",
    "coder_sft": "domainspec.coder.sft:CODER_SFT_STAGE",
    "coder_data": "domainspec.coder.stages:CODER_DATA_STAGE",
    "generate": "domainspec.eval.stages:GENERATE_STAGE",
    "eval": "domainspec.eval.stages:EVAL_STAGE",
    "math_loop": "domainspec.math.loop:MATH_LOOP_STAGE",
    "rm": "domainspec.math.stages:RM_STAGE",
    "reject_sample": "domainspec.math.stages:REJECT_SAMPLE_STAGE",
    "math_eval": "domainspec.math.stages:MATH_EVAL_STAGE",
}


def get_stage_type(name: str) -> StageType:
    """Resolve a registered stage type; unknown names and broken registrations raise."""
    if name not in STAGE_TYPES:
        raise KeyError(f"unknown stage type {name!r}; known: {', '.join(sorted(STAGE_TYPES))}")
    module_name, attr = STAGE_TYPES[name].split(":")
    try:
        module = importlib.import_module(module_name)
        stage = getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise RuntimeError(f"stage type {name!r} is registered as {STAGE_TYPES[name]} but does not load: {e}") from e
    if not isinstance(stage, StageType):
        raise RuntimeError(f"stage type {name!r}: {STAGE_TYPES[name]} is not a StageType")
    return stage
