"""Sandbox semantics: pass / fail / error / timeout, early exits, capture, order, levels, lifecycle."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from domainspec.common.sandbox import isolation
from domainspec.common.sandbox.isolation import LEVELS, choose_level, level_available
from domainspec.common.sandbox.pool import ExecResult, Sandbox, SandboxConfig, SandboxError, Status


def tagged_pids(tag: str) -> list[int]:
    """Live processes whose command line carries ``tag`` (every worker and its forked programs)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "cmdline").read_bytes():
                    out.append(int(entry.name))
            except OSError:
                pass
    return out


@pytest.fixture(scope="module")
def sb():
    os.environ["DS_SANDBOX_SECRET"] = "host-only"  # must not reach programs
    try:
        with Sandbox(SandboxConfig(timeout_s=10, workers=2, memory_mb=1024, max_output_bytes=4096)) as s:
            yield s
    finally:
        os.environ.pop("DS_SANDBOX_SECRET", None)


def test_pass_captures_stdout(sb):
    r = sb.run("x = sum(range(10))\nprint(x)\nassert x == 45\n")
    assert isinstance(r, ExecResult)
    assert r.status is Status.PASSED and r.passed
    assert r.stdout == "45\n" and r.exit_code == 0 and r.duration_s > 0


@pytest.mark.parametrize("program, status, in_stderr", [
    ("assert 1 == 2, 'boom'", Status.FAILED, "AssertionError: boom"),
    ("def f():\n    return 1 / 0\nf()", Status.FAILED, "ZeroDivisionError"),
    ("import sys\nsys.exit(3)", Status.FAILED, ""),
    ("raise KeyboardInterrupt", Status.FAILED, "KeyboardInterrupt"),
    ("def f(:\n    pass", Status.ERROR, "SyntaxError"),
    ("x = 1\n  y = 2", Status.ERROR, "IndentationError"),
    ("s = 'a\x00b'", Status.ERROR, ""),  # NUL byte: compile() raises, not a program failure
    ("input()", Status.FAILED, "EOFError"),  # stdin is closed (/dev/null)
])
def test_statuses(sb, program, status, in_stderr):
    r = sb.run(program)
    assert r.status is status, r
    assert in_stderr in r.stderr


@pytest.mark.parametrize("exit_line", [
    "import sys; sys.exit(0)", "import os; os._exit(0)", "raise SystemExit", "raise SystemExit(0)",
    "exit()", "quit()", "import sys; sys.exit()",
])
def test_early_exit_with_status_zero_fails(sb, exit_line):
    program = f"def check():\n    assert False\n{exit_line}\ncheck()\n"
    r = sb.run(program)
    assert r.status is Status.FAILED, r
    assert r.exit_code == 0 and "before its last statement" in r.stderr


def test_forged_completion_marker_fails(sb):
    r = sb.run("import os\nos.write(3, b'D' + b'0' * 32 + b':' + str(os.getpid()).encode())\nos._exit(0)\n")
    assert r.status is Status.FAILED


def test_timeout_kills_program(sb):
    t0 = time.monotonic()
    r = sb.run("import time\ntime.sleep(60)", timeout_s=1.0)
    assert r.status is Status.TIMEOUT and r.exit_code is None
    assert 1.0 <= r.duration_s < 3.0 and time.monotonic() - t0 < 5.0


def test_run_many_preserves_order(sb):
    programs = [f"import time\ntime.sleep({(7 * i) % 5 * 0.02})\nprint({i})" for i in range(20)]
    results = sb.run_many(programs, progress=False)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
    assert all(r.passed for r in results)
    assert sb.run_many([]) == []


def test_output_is_capped_to_the_tail(sb):
    r = sb.run("print('a' * 100000)\nprint('END')")
    assert r.passed
    assert r.stdout.endswith("a\nEND\n") and "bytes dropped" in r.stdout
    assert len(r.stdout) < 4096 + 100


def test_scrubbed_env_private_fresh_tmpdir(sb):
    first = sb.run("import os\nassert 'DS_SANDBOX_SECRET' not in os.environ\n"
                   "open('left.txt', 'w').write('x')\nprint(os.getcwd())")
    assert first.passed, first
    second = sb.run("import os\nassert os.listdir('.') == [], os.listdir('.')\nprint(os.getcwd())")
    assert second.passed, second
    assert first.stdout != second.stdout
    if sb.level != "bwrap":  # at bwrap level the directory lives in the sandbox's own tmpfs
        assert not Path(first.stdout.strip()).exists()


def test_memory_limit(sb):
    r = sb.run("x = bytearray(2 * 1024 ** 3)")
    assert r.status is Status.FAILED and "MemoryError" in r.stderr


def test_level_reported(sb):
    assert sb.level in LEVELS
    assert sb.level == choose_level("auto")
    if level_available("bwrap"):
        assert sb.level == "bwrap"


def test_worker_death_fails_that_program_only(sb):
    victim = sb._workers[0]
    results = {}

    def kill_soon():
        time.sleep(0.5)
        os.killpg(victim.proc.pid, signal.SIGKILL)

    import threading
    t = threading.Thread(target=kill_soon)
    t.start()
    results = sb.run_many(["import time\ntime.sleep(3)"] * 2)
    t.join()
    assert sorted(r.status.value for r in results) == ["failed", "passed"]
    assert all(r.passed for r in sb.run_many(["pass"] * 4))  # the worker was replaced


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_when_available(level):
    if not level_available(level):
        pytest.skip(f"isolation level {level!r} not available on this machine")
    with Sandbox(SandboxConfig(isolation=level, workers=1, timeout_s=1)) as s:
        assert s.level == level
        res = s.run_many(["print('ok')", "assert False", "import os; os._exit(0)", "while True: pass",
                          "def f(:", "import subprocess, sys\n"
                          "print(subprocess.run([sys.executable, '-c', 'print(6*7)'], capture_output=True, text=True).stdout)"])
        assert [r.status for r in res] == [Status.PASSED, Status.FAILED, Status.FAILED, Status.TIMEOUT,
                                           Status.ERROR, Status.PASSED], res
        assert res[0].stdout == "ok\n" and res[5].stdout.strip() == "42"
        tag = s.tag
    assert tagged_pids(tag) == []


def test_unavailable_level_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(isolation._available, "bwrap", False)
    with pytest.raises(SandboxError, match="'bwrap' is not available"):
        Sandbox(SandboxConfig(isolation="bwrap"))


def test_config_validation():
    with pytest.raises(ValidationError):
        SandboxConfig(timeout_s=0)
    with pytest.raises(ValidationError):
        SandboxConfig(isolation="docker")
    with pytest.raises(ValidationError):
        SandboxConfig(timeout=3)  # unknown key


def test_close_is_idempotent_and_leaves_nothing():
    s = Sandbox(SandboxConfig(workers=2, timeout_s=5))
    assert s.run("pass").passed
    assert len(tagged_pids(s.tag)) >= 2
    s.close()
    s.close()
    assert tagged_pids(s.tag) == []
    with pytest.raises(SandboxError, match="closed"):
        s.run("pass")


def test_program_is_unprivileged_when_host_is_root(sb):
    if os.geteuid() != 0 or not sb._workers[0].info["uid_drop"]:
        pytest.skip("programs get their own uid only when the host runs as root")
    r = sb.run("import os\nassert os.getuid() != 0 and os.geteuid() != 0\n"
               "caps = {l.split(':')[0]: int(l.split()[1], 16) for l in open('/proc/self/status') if l.startswith('Cap')}\n"
               "assert caps['CapEff'] & ~(1 << 2) == 0 and caps['CapPrm'] & ~(1 << 2) == 0, caps\n"
               "assert open('/proc/self/status').read().count('NoNewPrivs:\\t1') == 1\n")
    assert r.passed, r
