"""``domainspec coder ...``: multi-stage SFT and its data, from the command line.

    domainspec coder sft [--config FILE] [--set stages.1.train.lr=5e-4] [--out DIR]
    domainspec coder dpo --model runs/coder_sft/final [--config FILE] [--set beta=0.2] [--out DIR]
    domainspec coder build-data --out DIR [--toy N] [--heldout N] [--stdlib] [--math N] [--filter] [--no-decontam]

Without ``--config`` the embedded default recipe (coder/default_sft.yaml) runs. This
module only parses and calls (coder/sft.py, coder/sft_data.py); heavy imports stay
inside the handlers so ``domainspec --help`` is fast.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("coder", help="Coder recipe: multi-stage SFT with execution-checked data")
    sub = p.add_subparsers(dest="coder_command", metavar="SUBCOMMAND")

    sft = sub.add_parser("sft", help="run (or resume) the multi-stage SFT of a config")
    sft.add_argument("--config", help="CoderSFTConfig YAML (default: the embedded two-stage recipe)")
    sft.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. stages.0.train.max_steps=10 (repeatable)")
    sft.add_argument("--out", default="runs/coder_sft", help="output folder (default: runs/coder_sft)")
    sft.add_argument("--check", action="store_true", help="validate the config and exit")
    sft.set_defaults(func=_sft)

    dpo = sub.add_parser("dpo", help="DPO on preference pairs judged by executing the tasks' tests")
    dpo.add_argument("--config", help="DPOConfig YAML (default: the class defaults)")
    dpo.add_argument("--model", default=None, help="starting policy folder (sets model.name_or_path)")
    dpo.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. beta=0.2 (repeatable)")
    dpo.add_argument("--out", default="runs/coder_dpo", help="output folder (default: runs/coder_dpo)")
    dpo.set_defaults(func=_dpo)

    data = sub.add_parser("build-data", help="write SFT JSONL files (toy tasks, held-out set, stdlib doctests)")
    data.add_argument("--out", required=True, help="output folder")
    data.add_argument("--toy", type=int, default=2000, help="training toy tasks to generate (0 = none)")
    data.add_argument("--heldout", type=int, default=100, help="held-out toy tasks (HumanEval-format JSONL)")
    data.add_argument("--seed", type=int, default=0, help="seed of the training toy tasks (held-out: seed + 1)")
    data.add_argument("--stdlib", action="store_true", help="also write standard-library doctest rows")
    data.add_argument("--math", type=int, default=0, help="also write N generated math conversations")
    data.add_argument("--filter", action="store_true",
                      help="execution-filter rows with tests in the sandbox and decontaminate (HumanEval/MBPP)")
    data.add_argument("--no-decontam", action="store_true", help="with --filter: skip decontamination")
    data.set_defaults(func=_build_data)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _sft(args: argparse.Namespace) -> int:
    from domainspec.coder.sft import load_coder_sft_config, render_report, run_coder_sft

    cfg = load_coder_sft_config(args.config, args.overrides)
    if args.check:
        print(f"config OK: {len(cfg.stages)} stages ({', '.join(s.name for s in cfg.stages)})")
        return 0
    summary = run_coder_sft(cfg, args.out)
    print(render_report(summary))
    return 0


def _dpo(args: argparse.Namespace) -> int:
    from domainspec.common.config import load_config
    from domainspec.coder.dpo import DPOConfig, markdown, run_dpo

    flags = [f"model.name_or_path={args.model}"] if args.model else []
    cfg = load_config(DPOConfig, args.config, flags + list(args.overrides))
    print(markdown(run_dpo(cfg, args.out)))
    return 0


def _build_data(args: argparse.Namespace) -> int:
    from domainspec.coder.build_data import CoderDataConfig, build_data

    cfg = CoderDataConfig(toy=args.toy, heldout=args.heldout, seed=args.seed, stdlib=args.stdlib, math=args.math,
                          filter=args.filter)
    if args.no_decontam:
        cfg.exec_filter.decontam.enabled = False
    report = build_data(cfg, args.out)
    for name, entry in report.items():
        counts = entry.get("filter")
        dropped = ", ".join(f"{k} {v}" for k, v in (counts or {}).get("dropped", {}).items() if v) or "none"
        detail = f" (filter: kept {counts['kept']} of {counts['total']}; dropped: {dropped})" if counts else ""
        print(f"{name}: {entry['written']} rows -> {Path(args.out) / (name + '.jsonl')}{detail}")
    return 0
