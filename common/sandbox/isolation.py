"""Sandbox isolation levels: which ones this machine offers, and the command prefix that starts a worker in one.

``bwrap`` > ``namespaces`` > ``rlimits``, strongest first; what each level does and does not
protect against is in :mod:`domainspec.common.sandbox.pool`. Each level is probed once per
process by starting a tiny Python inside it.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

log = logging.getLogger(__name__)

LEVELS = ("bwrap", "namespaces", "rlimits")


class SandboxError(RuntimeError):
    """The sandbox itself cannot work (no isolation level, workers fail to start)."""


def _tmp_rebinds() -> list[str]:
    """Read-only binds, over the private /tmp, of the interpreter and this package when they live
    under /tmp (a virtual environment or a checkout there), so the worker can still start."""
    out: list[str] = []
    roots = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    for root in sorted(roots):
        real = os.path.realpath(root)
        if real == "/tmp" or real.startswith("/tmp/"):
            out += ["--ro-bind", real, real]
    return out


def launch_prefix(level: str) -> list[str]:
    """The argv prefix that runs a command inside ``level`` (empty for rlimits)."""
    if level == "bwrap":
        cmd = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
               *_tmp_rebinds(),
               "--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session", "--chdir", "/"]
        # as root bwrap drops every capability; the worker needs setuid/kill/chown to give
        # each program its own uid (the program itself ends with none but DAC_READ_SEARCH)
        return cmd + (["--cap-add", "ALL"] if os.geteuid() == 0 else [])
    if level == "namespaces":
        return ["unshare", "-n", "-p", "-f", "--mount-proc", "--kill-child"] + (
            [] if os.geteuid() == 0 else ["-r"])
    return []


_available: dict[str, bool] = {}


def level_available(level: str) -> bool:
    """Whether ``level`` works here (probed once per process by starting a tiny Python in it)."""
    if level not in _available:
        if level == "rlimits":
            ok = True
        else:
            try:
                ok = subprocess.run([*launch_prefix(level), sys.executable, "-I", "-S", "-c", "pass"],
                                    stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                                    cwd="/").returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                ok = False
        _available[level] = ok
    return _available[level]


def choose_level(requested: str = "auto") -> str:
    """``requested`` if it works here (else SandboxError); for "auto" the strongest that works."""
    if requested != "auto":
        if requested not in LEVELS:
            raise SandboxError(f"sandbox isolation {requested!r} unknown; expected auto or one of {LEVELS}")
        if not level_available(requested):
            raise SandboxError(f"sandbox isolation {requested!r} is not available on this machine "
                               f"(available: {[lv for lv in LEVELS if level_available(lv)]}); use isolation: auto")
        return requested
    for level in LEVELS:
        if level_available(level):
            if level != "bwrap":
                log.warning("sandbox: bwrap unavailable, falling back to %r isolation", level)
            return level
    raise AssertionError("unreachable: rlimits is always available")
