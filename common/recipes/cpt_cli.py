"""``domainspec cpt``: continued pretraining from a config file.

    domainspec cpt --config cpt.yaml [--set train.max_steps=100 ...] [--out runs/cpt] [--no-resume]
    domainspec cpt prepare --config cpt.yaml [--set prepare.dir=/shared/cpt_data]   # data only, once
    deepspeed --num_gpus 8 --module domainspec.common.recipes.cpt_cli --config cpt.yaml --out runs/cpt   # one rank per GPU
    torchrun --nproc-per-node 8 -m domainspec.common.recipes.cpt_cli --config cpt.yaml --out runs/cpt

The file is a :class:`~domainspec.common.recipes.cpt.CPTConfig` (or a file with a top-level ``cpt:``
section, e.g. a stage config); ``--set`` overrides win over the file. Only parses and calls
:func:`~domainspec.common.recipes.cpt.run_cpt`, or :func:`~domainspec.common.recipes.cpt.prepare_data`
for ``prepare`` (which ``cpt`` also runs itself when the data is not prepared yet).
"""
from __future__ import annotations

import argparse
import os
import sys


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["train", "prepare"], default="train",
                   help="train (default), or prepare: mix, decontaminate, FIM, tokenize and pack the data into "
                        "shards under prepare.dir (default OUT/data) and stop")
    p.add_argument("--config", required=True, help="YAML file holding a CPTConfig (or a top-level 'cpt:' section)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.lr=1e-4 (repeatable)")
    p.add_argument("--out", default="runs/cpt", help="output folder (checkpoints, metrics.jsonl, final/)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="start from step 0 even if the output folder holds checkpoints")
    # the deepspeed launcher appends --local_rank=N; the rank also arrives in $LOCAL_RANK
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


def register(subparsers) -> None:
    p = subparsers.add_parser("cpt", help="continued pretraining (Qwen2.5-Coder/Math recipe) from a config file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from domainspec.common.config import load_config, load_yaml
    from domainspec.common.recipes.cpt import CPTConfig, prepare_data, run_cpt

    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    data, _ = load_yaml(args.config)
    section = "cpt" if isinstance(data, dict) and set(data) == {"cpt"} else None
    cfg = load_config(CPTConfig, args.config, args.overrides, section=section)
    if args.action == "prepare":
        folder, m = prepare_data(cfg, args.out)
        dec = m["decontam"] or {}
        print(f"cpt prepare: {m['documents']} documents -> {m['sequences']} sequences x {m['seq_len']} tokens "
              f"({m['tokens']} tokens, packing efficiency {m['packing_efficiency']:.4f}, "
              f"{dec.get('dropped', 0)} dropped by decontamination) in {folder}")
        return 0
    out = run_cpt(cfg, args.out, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        loss = "n/a" if out["final_loss"] is None else f"{out['final_loss']:.4f}"
        print(f"cpt: {out['steps']} steps, final loss {loss}, model in {out['model']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m domainspec.common.recipes.cpt_cli``: the entry point for distributed launchers."""
    import logging

    from domainspec.common.config import ConfigError
    parser = argparse.ArgumentParser(prog="domainspec cpt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        return run(args)
    except ConfigError as e:
        print(f"domainspec cpt: config error:\n{e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
