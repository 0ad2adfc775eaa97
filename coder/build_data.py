"""Write the Coder's offline SFT data as JSONL files (``domainspec coder build-data``, stage ``coder_data``).

Files under ``out_dir``: ``toy_train.jsonl``, ``stdlib_doctest.jsonl``, ``math.jsonl``
(SFT rows: ``messages`` + ``test``/``test_setup`` where tests exist), ``toy_heldout.jsonl``
(HumanEval format: score it with ``domainspec eval score --benchmark humaneval --data``),
``*.dropped.jsonl`` (rows the execution filter dropped, with the reason) and ``build_report.json``.

Not here: the generators (toy_tasks.py, stdlib_data.py) and the filter (exec_filter.py).
"""
from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from domainspec.common.config import Config
from domainspec.coder.exec_filter import ExecFilterConfig


class CoderDataConfig(Config):
    toy: int = Field(2000, ge=0, description="Training toy tasks to generate (0 = none).")
    heldout: int = Field(100, ge=0, description="Held-out toy tasks, written in HumanEval format (0 = none).")
    seed: int = Field(0, description="Seed of the training toy tasks and math problems (held-out: seed + 1).")
    stdlib: bool = Field(True, description="Write standard-library doctest rows.")
    math: int = Field(0, ge=0, description="Generated math conversations to write (0 = none).")
    filter: bool = Field(True, description="Execution-filter rows with tests and decontaminate them.")
    exec_filter: ExecFilterConfig = Field(default_factory=ExecFilterConfig, description="Filter settings.")


def build_data(cfg: CoderDataConfig, out_dir: str | Path) -> dict:
    """Write the files (see module docstring); returns the report (rows written, filter counts)."""
    from domainspec.coder.exec_filter import execution_filter
    from domainspec.coder.sft_data import SFTSourceConfig, load_source_rows
    from domainspec.coder.toy_tasks import generate_tasks, write_humaneval_jsonl

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sets: dict[str, list[dict]] = {}
    if cfg.toy:
        sets["toy_train"] = load_source_rows(SFTSourceConfig(path="builtin:toy_code_train", size=cfg.toy,
                                                             seed=cfg.seed))
    if cfg.stdlib:
        sets["stdlib_doctest"] = load_source_rows(SFTSourceConfig(path="builtin:stdlib_doctest"))
    if cfg.math:
        sets["math"] = load_source_rows(SFTSourceConfig(path="builtin:math", size=cfg.math, seed=cfg.seed))
    report: dict = {}
    for name, rows in sets.items():
        if cfg.filter and name != "math":  # math rows carry no tests
            rows, frep = execution_filter(rows, cfg.exec_filter, dropped_path=out / f"{name}.dropped.jsonl")
            report[name] = {"filter": frep.to_dict()}
        with (out / f"{name}.jsonl").open("w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        report.setdefault(name, {})["written"] = len(rows)
    if cfg.heldout:
        path = write_humaneval_jsonl(generate_tasks(cfg.heldout, seed=cfg.seed + 1, split="heldout"),
                                     out / "toy_heldout.jsonl")
        report["toy_heldout"] = {"written": cfg.heldout, "score_with": "domainspec eval score --benchmark "
                                 f"humaneval --data {path} --samples S.jsonl --out DIR"}
    (out / "build_report.json").write_text(json.dumps(report, indent=2))
    return report
