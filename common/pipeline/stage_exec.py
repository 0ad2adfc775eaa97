"""Entry point every rank runs under a distributed launcher (deepspeed, torchrun, srun).

``python -m domainspec.common.pipeline.stage_exec --spec <stage_dir>/stage_spec.json``:
rebuilds the stage's typed config from the spec the runner wrote, runs the
stage, and on rank 0 writes ``stage_result.json`` for the runner.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from domainspec.common.config import build_config
from domainspec.common.pipeline.stages import StageContext, get_stage_type


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
    spec = json.loads(Path(args.spec).read_text())
    stage = get_stage_type(spec["type"])
    cfg = build_config(stage.config_cls, spec["config"])
    ctx = StageContext(Path(spec["out_dir"]), spec["pipeline"], spec["stage"], resume=spec.get("resume", True),
                       world_size=int(os.environ.get("WORLD_SIZE", "1")))
    metrics = dict(stage.run(cfg, ctx) or {})
    if rank == 0:
        out = ctx.out_dir / "stage_result.json"
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(metrics, indent=1, default=str))
        tmp.replace(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
