"""Stage types the pipeline runner knows, and the contract each one follows.

A stage type is a typed config class plus ``run(config, ctx)`` and the relative
paths of the artifacts it writes under its stage folder. ``run`` returns a
:class:`StageResult` (key figures and tables, what the run report renders) or a
plain dict that the runner turns into one with :meth:`StageResult.of`. Types are
registered here by *string* (``module:attribute``) and imported only when a
pipeline uses them, so the engine never imports a domain at import time
(imports flow common <- eval <- coder, math). A registration that does not
resolve raises: a broken stage type never silently disappears.
"""
from __future__ import annotations

import importlib
import json
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


Figure = float | int | str | bool | None


@dataclass
class StageResult:
    """What a stage reports: scalar key figures and tables (lists of flat rows), by dotted name."""

    figures: dict[str, Figure] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)

    @classmethod
    def of(cls, value: "StageResult | Mapping[str, Any] | None", where: str = "stage result") -> "StageResult":
        """A stage's return value as a StageResult: nested mappings flatten to dotted names, scalars
        become figures, non-empty lists of dicts tables; anything else (lists of scalars) is not reported."""
        if isinstance(value, StageResult):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise TypeError(f"{where}: a stage returns a StageResult or a dict, got {type(value).__name__}")
        out = cls()
        # through JSON first, as the values used to reach the report: Paths and numpy ints become strings
        out._add(json.loads(json.dumps(dict(value), default=str)), "")
        return out

    def _add(self, value: Mapping[str, Any], prefix: str) -> None:
        for k, v in value.items():
            name = f"{prefix}{k}"
            if isinstance(v, Mapping):
                self._add(v, f"{name}.")
            elif isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                self.tables[name] = v
            elif isinstance(v, (int, float, str, bool)) or v is None:
                self.figures[name] = v

    def to_dict(self) -> dict[str, Any]:
        return {"figures": self.figures, "tables": self.tables}

    @classmethod
    def from_dict(cls, obj: Any, where: str = "stage result") -> "StageResult":
        """Read back :meth:`to_dict`; a wrong shape raises naming ``where``."""
        if obj is None:
            return cls()
        if not (isinstance(obj, dict) and isinstance(obj.get("figures", {}), dict)
                and isinstance(obj.get("tables", {}), dict) and set(obj) <= {"figures", "tables"}):
            raise ValueError(f"{where}: expected {{'figures': {{...}}, 'tables': {{...}}}}, got {str(obj)[:200]}")
        tables = obj.get("tables", {})
        for name, rows in tables.items():
            if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
                raise ValueError(f"{where}: table {name!r}: expected a list of rows (objects)")
        return cls(dict(obj.get("figures", {})), dict(tables))

    def flat(self) -> dict[str, Any]:
        """Figures and tables in one mapping by name (the names never collide: each came from one key)."""
        return {**self.figures, **self.tables}


@dataclass(frozen=True)
class StageType:
    name: str
    config_cls: type[Config]
    run: Callable[[Any, StageContext], "StageResult | Mapping[str, Any]"]
    # output name -> path relative to the stage folder, e.g. {"model": "final"}
    outputs: Mapping[str, str]
    # training stages (cpt, sft, coder_sft, rm), data-parallel sampling stages (generate, eval) and the
    # stages doing both (reject_sample, math_loop) may be launched with deepspeed/torchrun/slurm, every
    # rank running ``run`` (common/pipeline/ranks.py); others always run locally
    distributed: bool = False
    description: str = ""


# type name -> "module:attribute" of a StageType
STAGE_TYPES: dict[str, str] = {
    "cpt": "domainspec.common.recipes.cpt:CPT_STAGE",
    "cpt_data": "domainspec.common.recipes.cpt:CPT_DATA_STAGE",
    "sft": "domainspec.common.recipes.sft:SFT_STAGE",
    "coder_sft": "domainspec.coder.sft:CODER_SFT_STAGE",
    "coder_data": "domainspec.coder.stages:CODER_DATA_STAGE",
    "generate": "domainspec.eval.stages:GENERATE_STAGE",
    "eval": "domainspec.eval.stages:EVAL_STAGE",
    "math_loop": "domainspec.math.loop:MATH_LOOP_STAGE",
    "rm": "domainspec.math.stages:RM_STAGE",
    "reject_sample": "domainspec.math.stages:REJECT_SAMPLE_STAGE",
    "math_eval": "domainspec.math.stages:MATH_EVAL_STAGE",
    "grpo": "domainspec.math.grpo:GRPO_STAGE",
    "dpo": "domainspec.coder.dpo:DPO_STAGE",
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
