"""Entry point every rank runs under a distributed launcher (deepspeed, torchrun, srun).

``python -m domainspec.common.pipeline.stage_exec --spec <stage_dir>/stage_spec.json``:
rebuilds the stage's typed config from the spec the runner wrote, runs the
stage, and on rank 0 writes its :class:`StageResult` to ``stage_result.json`` for the runner. A rank
that fails writes its error to ``rank<R>.error.log`` in the stage folder before it exits.
"""
from __future__ import annotations

import argparse
import logging
import os
import traceback
from pathlib import Path

from domainspec.common.artifacts import read_json, write_json
from domainspec.common.config import build_config
from domainspec.common.pipeline.stages import StageContext, StageResult, get_stage_type


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spec", required=True, help="stage_spec.json written by the pipeline runner")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help="set by the deepspeed launcher")
    args = parser.parse_args(argv)
    if args.local_rank is not None:
        os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    spec = read_json(args.spec)
    stage = get_stage_type(spec["type"])
    cfg = build_config(stage.config_cls, spec["config"])
    ctx = StageContext(Path(spec["out_dir"]), spec["pipeline"], spec["stage"], resume=spec.get("resume", True),
                       world_size=int(os.environ.get("WORLD_SIZE", "1")))
    try:
        result = StageResult.of(stage.run(cfg, ctx), where=f"{spec['pipeline']}/{spec['stage']}")
    except BaseException as e:
        # the launcher's log interleaves every rank; this rank's own error also goes to a file of its own,
        # which the runner puts first in the stage's error (launchers.run_distributed)
        logging.getLogger(__name__).exception("rank %d failed", rank)
        (ctx.out_dir / f"rank{rank}.error.log").write_text(f"rank {rank}: {type(e).__name__}: {e}\n\n"
                                                           + traceback.format_exc())
        raise
    if rank == 0:
        write_json(result.to_dict(), ctx.out_dir / "stage_result.json", indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
