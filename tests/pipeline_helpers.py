"""Shared setup of the end-to-end stage tests: a pipeline file with one stage, run through `domainspec run`."""
from __future__ import annotations

from pathlib import Path

import yaml


def one_stage_pipeline(tmp_path: Path, stage_type: str, config: dict, launcher: dict | None = None) -> tuple[Path, Path]:
    """Write ``tmp_path/pipe.yaml`` (workdir ``tmp_path/wd``, pipeline ``p``, one stage named as its type).

    Returns the pipeline file (for ``main(["run", str(file)])``) and the stage's output folder.
    """
    stage = {"type": stage_type, **({"launcher": launcher} if launcher else {}), "config": config}
    doc = {"workdir": str(tmp_path / "wd"), "pipelines": {"p": {"stages": {stage_type: stage}}}}
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path, tmp_path / "wd" / "p" / stage_type
