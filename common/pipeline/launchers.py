"""How a training or sampling stage is started: in-process, under deepspeed/torchrun, or as a SLURM job.

Only stages with ``StageType.distributed`` use a launcher: training (cpt, sft, coder_sft, rm), the
data-parallel sampling of ``generate``/``eval`` (each rank samples a share of the tasks, rank 0
merges and scores), and the stages doing both (reject_sample, math_loop); code execution
parallelizes across processes itself. The distributed launchers run
``python -m domainspec.common.pipeline.stage_exec --spec <stage_dir>/stage_spec.json`` on
every rank; rank 0 writes ``stage_result.json`` which the runner reads back.
"""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from domainspec.common.config import Config

EXEC_MODULE = "domainspec.common.pipeline.stage_exec"


class LauncherConfig(Config):
    kind: Literal["local", "deepspeed", "torchrun", "slurm"] = Field(
        "local", description="local: in this process; deepspeed / torchrun: one process per GPU (or CPU rank), "
                             "multi-node with a hostfile / rendezvous; slurm: writes an sbatch script and submits it")
    nproc_per_node: int = Field(1, ge=1, description="processes (GPUs) per node")
    nnodes: int = Field(1, ge=1, description="number of nodes")
    hostfile: str | None = Field(None, description="deepspeed hostfile for multi-node runs (lines 'host slots=N')")
    master_addr: str | None = Field(None, description="rendezvous host for multi-node deepspeed/torchrun (SLURM: derived)")
    master_port: int = Field(29500, description="rendezvous port")
    cpu: bool = Field(False, description="run the distributed ranks on CPU (gloo), e.g. to test the path without GPUs")
    # slurm
    partition: str | None = Field(None, description="SLURM partition")
    account: str | None = Field(None, description="SLURM account")
    time: str = Field("24:00:00", description="SLURM wall-clock limit")
    cpus_per_task: int = Field(16, ge=1, description="SLURM CPUs per task (one task per node)")
    sbatch_extra: list[str] = Field(default_factory=list, description="extra '#SBATCH ...' option lines, e.g. '--qos=high'")
    setup: list[str] = Field(default_factory=list, description="shell lines run before launching (module load, conda activate, ...)")
    submit: bool = Field(True, description="slurm: submit with 'sbatch --wait' when sbatch exists; else only write the script")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "deepspeed" and self.nnodes > 1 and not self.hostfile:
            raise ValueError("deepspeed launcher with nnodes > 1 needs a hostfile")
        if self.kind == "torchrun" and self.nnodes > 1 and not self.master_addr:
            raise ValueError("torchrun launcher with nnodes > 1 needs master_addr (the rendezvous host)")
        return self

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


def exec_args(spec_path: Path) -> list[str]:
    return ["-m", EXEC_MODULE, "--spec", str(spec_path)]


def launch_command(cfg: LauncherConfig, spec_path: Path) -> list[str]:
    """The argv that starts every rank of a deepspeed/torchrun stage."""
    if cfg.kind == "deepspeed":
        cmd = ["deepspeed"]
        if cfg.hostfile:
            cmd += ["--hostfile", cfg.hostfile, "--num_nodes", str(cfg.nnodes)]
        if cfg.master_addr:
            cmd += ["--master_addr", cfg.master_addr]
        cmd += ["--master_port", str(cfg.master_port)]
        cmd += ["--num_gpus", str(cfg.nproc_per_node)]  # ranks per node (CPU ranks on the CPU accelerator)
        cmd += ["--module", EXEC_MODULE, "--spec", str(spec_path)]
        return cmd
    if cfg.kind == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(cfg.nproc_per_node),
               "--nnodes", str(cfg.nnodes)]
        if cfg.nnodes > 1:
            cmd += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"{cfg.master_addr}:{cfg.master_port}"]
        else:
            cmd += ["--master_port", str(cfg.master_port)]
        return cmd + exec_args(spec_path)
    raise ValueError(f"launcher {cfg.kind!r} has no direct command")


def slurm_script(cfg: LauncherConfig, spec_path: Path, job_name: str, log_dir: Path) -> str:
    """An sbatch script: one task per node, torchrun per node with a c10d rendezvous on the first node."""
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name={job_name}",
             f"#SBATCH --nodes={cfg.nnodes}",
             "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --gpus-per-node={cfg.nproc_per_node}",
             f"#SBATCH --cpus-per-task={cfg.cpus_per_task}",
             f"#SBATCH --time={cfg.time}",
             f"#SBATCH --output={log_dir}/slurm-%j.out"]
    if cfg.partition:
        lines.append(f"#SBATCH --partition={cfg.partition}")
    if cfg.account:
        lines.append(f"#SBATCH --account={cfg.account}")
    lines += [f"#SBATCH {x}" for x in cfg.sbatch_extra]
    lines += ["set -euo pipefail", *cfg.setup,
              # the first node of the allocation hosts the rendezvous
              'export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
              f"export MASTER_PORT={cfg.master_port}",
              "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}",
              # $SLURM_* and $MASTER_* must stay unquoted-expandable: written by hand, not shlex-joined
              "srun --kill-on-bad-exit=1 python -m torch.distributed.run"
              f' --nnodes "$SLURM_NNODES" --nproc_per_node {cfg.nproc_per_node}'
              ' --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT"'
              f" {shlex.join(exec_args(spec_path))}",
              ""]
    return "\n".join(lines)


def describe_launch(cfg: LauncherConfig, stage_dir: Path) -> str:
    """The command a stage's ranks start with (the plan's ``--dry-run`` prints it)."""
    spec = stage_dir / "stage_spec.json"
    if cfg.kind == "slurm":
        return (f"sbatch --wait {stage_dir / 'job.sbatch'}  (per node: srun torchrun --nnodes {cfg.nnodes} "
                f"--nproc_per_node {cfg.nproc_per_node} {shlex.join(exec_args(spec))})")
    return shlex.join(launch_command(cfg, spec))


def _rank_errors(stage_dir: Path) -> str:
    """The errors failed ranks wrote (stage_exec), first lines first: what to read before the log's tail."""
    texts = [p.read_text(errors="replace") for p in sorted(stage_dir.glob("rank*.error.log"))]
    return "".join(f"{t.splitlines()[0] if t else ''}\n" for t in texts)


def run_distributed(cfg: LauncherConfig, spec_path: Path, stage_dir: Path, job_name: str) -> None:
    """Start a stage under its launcher and wait; raise with the log's tail on failure."""
    log_path = stage_dir / "launcher.log"
    for old in stage_dir.glob("rank*.error.log"):  # errors of an earlier attempt
        old.unlink()
    if cfg.kind == "slurm":
        script = stage_dir / "job.sbatch"
        script.write_text(slurm_script(cfg, spec_path, job_name, stage_dir))
        if not (cfg.submit and shutil.which("sbatch")):
            raise RuntimeError(f"SLURM script written to {script}; sbatch is not available here (or submit: false). "
                               f"Submit it with 'sbatch {script}' and re-run the pipeline when the job has finished.")
        cmd = ["sbatch", "--wait", str(script)]
    else:
        cmd = launch_command(cfg, spec_path)
        missing = cmd[0] if cmd[0] != sys.executable and not shutil.which(cmd[0]) else None
        if missing:
            raise RuntimeError(f"launcher {cfg.kind!r}: command {missing!r} not found on PATH")
    with open(log_path, "ab") as logf:
        logf.write(("$ " + shlex.join(cmd) + "\n").encode())
        logf.flush()
        env = dict(os.environ)
        if cfg.cpu:
            # hide GPUs so every rank takes the CPU accelerator (gloo); one thread each keeps ranks from fighting
            env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu")
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        try:
            rc = proc.wait()
        except KeyboardInterrupt:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
    if rc != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        failed = _rank_errors(stage_dir)
        raise RuntimeError(f"launcher {cfg.kind!r} exited with {rc}"
                           + (f"; failed rank(s):\n{failed}" if failed else "") + f"; log {log_path}:\n{tail}")
