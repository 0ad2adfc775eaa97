"""``domainspec run pipelines.yaml``: plan, then run the stages of one or all pipelines."""
from __future__ import annotations

import argparse

DEFAULT_FILE = "pipelines.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run pipelines from a pipelines.yaml",
                       description="Plan and run pipelines; finished stages are skipped unless their config "
                                   "or inputs changed.")
    p.add_argument("file", nargs="?", default=DEFAULT_FILE, help="pipeline file (default: ./pipelines.yaml)")
    p.add_argument("--pipeline", action="append", help="pipeline to run (repeatable; default: all)")
    p.add_argument("--workdir", help="artifact root (default: the file's 'workdir', else ./runs)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and what would be skipped; run nothing")
    p.add_argument("--only", action="append", metavar="STAGE", help="run only this stage (repeatable; STAGE or pipeline/STAGE)")
    p.add_argument("--from", dest="start_from", metavar="STAGE", help="re-run this stage and everything after it")
    p.add_argument("--force", action="store_true", help="re-run every selected stage")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override: pipeline.stage.field=value (or a full path such as workdir=...)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import logging

    from domainspec.common.pipeline.plan import load_plan
    from domainspec.common.pipeline.report import write_report
    from domainspec.common.pipeline.runner import decide, execute, format_plan

    plan = load_plan(args.file, overrides=args.set, workdir=args.workdir, pipelines=args.pipeline)
    decisions = decide(plan, only=args.only, start_from=args.start_from, force=args.force)
    print(format_plan(plan, decisions), flush=True)
    if args.dry_run:
        return 0
    ok = False
    try:
        ok = execute(plan, decisions)
    finally:
        report = write_report(plan)
        logging.getLogger("domainspec.runner").info("report: %s", report)
    return 0 if ok else 1
