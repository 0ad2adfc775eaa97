"""Coder stage types for pipelines.yaml (registered by string in domainspec.common.pipeline.stages).

``coder_data``: coder/build_data.py (outputs ``toy_train``, ``toy_heldout``, ``stdlib``, ``report``).
``coder_sft`` lives with its runner: ``domainspec.coder.sft:CODER_SFT_STAGE``.
"""
from __future__ import annotations

from domainspec.common.pipeline.stages import StageType
from domainspec.coder.build_data import CoderDataConfig, build_data


def _run_data(cfg: CoderDataConfig, ctx) -> dict:
    report = build_data(cfg, ctx.out_dir)
    return {name: entry["written"] for name, entry in report.items()}


CODER_DATA_STAGE = StageType(
    "coder_data", CoderDataConfig, _run_data,
    outputs={"toy_train": "toy_train.jsonl", "toy_heldout": "toy_heldout.jsonl",
             "stdlib": "stdlib_doctest.jsonl", "report": "build_report.json"},
    distributed=False, description="Offline Coder SFT data: toy tasks with tests, stdlib doctests, "
                                   "execution filter + decontamination, held-out toy set (HumanEval format)")
