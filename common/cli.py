"""The ``domainspec`` command line: a thin dispatcher.

Each command group lives with the code it drives and exposes
``register(subparsers)``; modules are named here as strings so that ``common``
never imports a domain at import time (imports flow common <- eval <- coder, math).
Command modules keep heavy imports (torch, transformers) inside their handlers
so ``domainspec --help`` is fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# group name -> module exposing register(subparsers)
COMMAND_MODULES = {
    "run": "domainspec.common.pipeline.cli",
    "cpt": "domainspec.common.recipes.cpt_cli",
    "eval": "domainspec.eval.cli",
    "coder": "domainspec.coder.cli",
    "math": "domainspec.math.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domainspec",
        description="Specialize a base LLM into Coder and Math variants and score them "
                    "(HumanEval, MBPP, GSM8K, MATH).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # the deepspeed launcher puts --local_rank=N before the subcommand; the rank also arrives in $LOCAL_RANK
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMAND_MODULES.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a real import error inside the module: surface it
                raise
            continue  # group not built yet (README lists what is not done)
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from domainspec.common.config import ConfigError
    try:
        rc = args.func(args)
    except ConfigError as e:
        print(f"domainspec: config error:\n{e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("domainspec: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
