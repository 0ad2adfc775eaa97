"""Run a validated plan stage by stage, skipping what is already done.

A finished stage leaves a done marker (``common/pipeline/markers.py``) holding the stage hash
(its type, resolved config, the content hashes of external inputs and the hashes of its
upstream stages) and its :class:`StageResult`. On the next run a stage is skipped when that
hash still matches and no upstream stage runs; otherwise it runs again, and so does everything
downstream. A stage that was interrupted resumes from its own checkpoints only when its hash is
unchanged (its running marker); a changed stage starts from an empty folder. A failure stops the
run, leaves earlier artifacts intact and writes ``error.log`` in the stage folder.
"""
from __future__ import annotations

import logging
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from domainspec.common.artifacts import read_json, write_json
from domainspec.common.pipeline import markers
from domainspec.common.pipeline.launchers import describe_launch, run_distributed
from domainspec.common.pipeline.markers import Action, Marker
from domainspec.common.pipeline.plan import Plan, PlannedStage
from domainspec.common.pipeline.stages import StageContext, StageResult

log = logging.getLogger("domainspec.runner")


@dataclass
class StageDecision:
    stage: PlannedStage
    action: Action
    reason: str  # a markers.Reason, or why the selection (--only/--from/--force, upstream) decided


def decide(plan: Plan, only: Iterable[str] | None = None, start_from: str | None = None,
           force: bool = False) -> dict[str, list[StageDecision]]:
    """What would run and why. ``only``/``start_from`` take stage names (or pipeline/stage)."""
    only = set(only or ())
    out: dict[str, list[StageDecision]] = {}
    for pname, stages in plan.pipelines.items():
        names = {s.name for s in stages}
        for sel in list(only) + ([start_from] if start_from else []):
            sel_name = sel.split("/", 1)[1] if "/" in sel else sel
            if "/" in sel and sel.split("/", 1)[0] != pname:
                continue
            if sel_name not in names and "/" in sel:
                raise ValueError(f"--only/--from {sel!r}: pipeline {pname!r} has stages {sorted(names)}")
        decisions: list[StageDecision] = []
        running: set[str] = set()
        reached_from = start_from is None
        for s in stages:
            selected = not only or s.name in only or s.key in only
            if start_from is not None and (s.name == start_from or s.key == start_from):
                reached_from = True
            upstream_runs = [u for u in s.deps if u in running]
            if not selected:
                action, reason = Action.SKIP, "not selected (--only)"
            elif not reached_from:
                action, reason = Action.SKIP, "before --from"
            elif force or (start_from is not None and reached_from):
                action, reason = Action.RUN, "forced" if force else "--from"
            elif upstream_runs:
                action, reason = Action.RUN, f"upstream {', '.join(upstream_runs)} runs"
            elif (done := markers.is_done(s.out_dir, s.hash)).action is Action.RUN:
                action, reason = Action.RUN, str(done.reason)
            elif missing := [n for n in s.type.outputs if not s.output_path(n).exists()]:
                action, reason = Action.RUN, f"outputs missing: {', '.join(missing)}"
            else:
                action, reason = Action.SKIP, str(done.reason)
            if action is Action.RUN:
                running.add(s.name)
            decisions.append(StageDecision(s, action, reason))
        out[pname] = decisions
    return out


def format_plan(plan: Plan, decisions: dict[str, list[StageDecision]]) -> str:
    rows = [f"plan for {plan.source} (workdir {plan.workdir}):"]
    for pname, ds in decisions.items():
        rows.append(f"  pipeline {pname}:")
        for d in ds:
            s = d.stage
            after = f" after {', '.join(s.deps)}" if s.deps else ""
            launch = f" [{s.launcher.kind} x{s.launcher.world_size}]" if s.launcher.kind != "local" else ""
            rows.append(f"    {d.action:4}  {s.name} ({s.type.name}){launch}{after}: {d.reason}  -> {s.out_dir}")
            if s.launcher.kind != "local":
                rows.append(f"          launch: {describe_launch(s.launcher, s.out_dir)}")
    return "\n".join(rows)


def _prepare_dir(stage: PlannedStage) -> bool:
    """Make the stage folder ready; returns whether the stage may resume from what is there."""
    d = stage.out_dir
    if markers.may_resume(d, stage.hash):
        log.info("%s: resuming an interrupted run (same config and inputs)", stage.key)
        markers.mark_running(d, stage.hash)  # also drops a done marker a kill may have left beside it
        return True
    if d.exists():
        shutil.rmtree(d)  # stale artifacts of another config must not be resumed
    d.mkdir(parents=True)
    markers.mark_running(d, stage.hash)
    return False


def write_stage_spec(stage: PlannedStage, resume: bool) -> Path:
    spec = {"type": stage.type.name, "config": stage.config.to_dict(), "pipeline": stage.pipeline,
            "stage": stage.name, "out_dir": str(stage.out_dir), "resume": resume}
    return write_json(spec, stage.out_dir / "stage_spec.json", indent=1)


def run_stage(stage: PlannedStage) -> Marker:
    resume = _prepare_dir(stage)
    stage.config.save_resolved(stage.out_dir)
    t0 = time.time()
    if stage.launcher.kind == "local":
        ctx = StageContext(stage.out_dir, stage.pipeline, stage.name, resume=resume)
        result = StageResult.of(stage.type.run(stage.config, ctx), where=stage.key)
    else:
        spec = write_stage_spec(stage, resume)
        run_distributed(stage.launcher, spec, stage.out_dir, job_name=f"ds-{stage.pipeline}-{stage.name}")
        path = stage.out_dir / "stage_result.json"  # rank 0 wrote it (stage_exec)
        result = StageResult.from_dict(read_json(path), where=str(path)) if path.exists() else StageResult()
    return markers.write_done(stage.out_dir, stage.hash, result.to_dict(), elapsed_s=time.time() - t0,
                              type=stage.type.name,
                              outputs={n: str(stage.output_path(n)) for n in stage.type.outputs},
                              launcher=stage.launcher.kind, world_size=stage.launcher.world_size)


def execute(plan: Plan, decisions: dict[str, list[StageDecision]]) -> bool:
    """Run the decided stages in order. Returns False when a stage failed."""
    for pname, ds in decisions.items():
        for d in ds:
            s = d.stage
            if d.action is Action.SKIP:
                log.info("%s: skip (%s)", s.key, d.reason)
                continue
            log.info("%s: run %s (%s)", s.key, s.type.name, d.reason)
            try:
                marker = run_stage(s)
            except KeyboardInterrupt:
                log.warning("%s: interrupted; finished stages are kept, re-run the same command to resume", s.key)
                raise
            except Exception as e:  # noqa: BLE001 - a stage failure is reported, not re-raised
                (s.out_dir / "error.log").write_text(traceback.format_exc())
                log.error("%s: failed: %s: %s (traceback in %s)", s.key, type(e).__name__, e, s.out_dir / "error.log")
                return False
            log.info("%s: done in %.1fs", s.key, marker.elapsed_s)
    return True
