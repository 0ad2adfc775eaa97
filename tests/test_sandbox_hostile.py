"""Hostile programs: each must end FAILED or TIMEOUT, leaving the host, the other programs of
the same batch and the process table unharmed; the whole hostile batch runs within a bound.

One adversarial property per test, all read from a single batch run (with canary programs
interleaved) so the suite stays fast. Lifecycle tests (Ctrl-C, host killed) run a sandbox in
a child Python and look for leftover processes afterwards.
"""
from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from domainspec.common.sandbox.pool import UID_BASE, Sandbox, SandboxConfig, Status

REPO = Path(__file__).resolve().parents[1]
HOSTILE_BATCH_BOUND_S = 45.0  # stated bound for the whole hostile batch (2 workers, 3 s limit)
TIMEOUT_S = 3.0
TOKEN = secrets.token_hex(4)
SLEEP_MARK = f"9{int(TOKEN, 16) % 1000}.123"  # unique `sleep` argument of escaping processes
CANARY = "def g(n):\n    return 0 if n == 0 else 1 + g(n - 1)\nassert g(900) == 900\nassert len([1, 2]) == 2\nprint('canary ok')\n"


def tagged_pids(tag: str) -> list[int]:
    return [p for p, cmd in _procs() if tag.encode() in cmd]


def _procs():
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes()
            except OSError:
                pass


def pids_of_uids(uids: set[int]) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("Uid:") and int(line.split()[1]) in uids:
                        out.append(int(entry.name))
            except OSError:
                pass
    return out


def wait_until(cond, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


@pytest.fixture(scope="module")
def decoys():
    home = Path.home() / f".domainspec_sandbox_decoy_{TOKEN}"
    repo = REPO / f".sandbox_decoy_{TOKEN}"
    for d in (home, repo):
        (d / "sub").mkdir(parents=True)
        (d / "sub" / "precious.txt").write_text("keep me")
    yield {"home": home, "repo": repo, "escape": REPO / f"SANDBOX_ESCAPE_{TOKEN}",
           "tmp_escape": Path("/tmp") / f"sandbox_escape_{TOKEN}"}
    for d in (home, repo):
        shutil.rmtree(d, ignore_errors=True)
    for f in (REPO / f"SANDBOX_ESCAPE_{TOKEN}", Path("/tmp") / f"sandbox_escape_{TOKEN}"):
        f.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


def hostile_programs(decoys, port) -> dict[str, str]:
    return {
        "infinite_loop": "while True:\n    pass\n",
        "fork_bomb": "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        "escaping_children": textwrap.dedent(f"""\
            import os, subprocess, time
            subprocess.Popen(['sleep', '{SLEEP_MARK}'], start_new_session=True)
            for _ in range(10):
                if os.fork() == 0:
                    os.setsid()
                    if os.fork() == 0:
                        time.sleep(1000)
                    os._exit(0)
            os._exit(0)
            """),
        "memory_bomb": "x = []\nwhile True:\n    x.append(bytearray(64 * 2 ** 20))\n",
        "memory_one_shot": "x = bytearray(2 ** 40)\n",
        "huge_output": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
        "huge_stderr": "import os\nwhile True:\n    os.write(2, b'y' * 65536)\n",
        "huge_file": "with open('big.bin', 'wb') as f:\n    for _ in range(100):\n        f.write(b'z' * 2 ** 20)\n",
        "rmtree_home": f"import shutil\nshutil.rmtree({str(decoys['home'])!r})\n",
        "rmtree_repo": f"import shutil\nshutil.rmtree({str(decoys['repo'])!r})\n",
        "write_repo": f"open({str(decoys['escape'])!r}, 'w').write('escaped')\n",
        "socket": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'x')\n",
        "kill_parent": "import os\nos.kill(os.getppid(), 9)\nimport time\ntime.sleep(0.5)\n",
        # the worker's group may be 1 inside the PID namespace: killpg(1) = kill(-1), own uid only
        "kill_group_of_parent": "import os\nos.killpg(os.getpgid(os.getppid()), 9)\nos.kill(os.getppid(), 9)\n",
        "recursion_limit": "import sys\nsys.setrecursionlimit(10 ** 6)\ndef f(n):\n    return f(n + 1)\nf(0)\n",
        "monkeypatch_builtins": textwrap.dedent("""\
            import builtins, os, sys, traceback
            builtins.len = lambda x: 42
            builtins.print = lambda *a, **k: None
            builtins.AssertionError = Exception
            sys.exit = os._exit = lambda *a: None
            os.write = lambda *a: 0
            traceback.print_exception = lambda *a, **k: None
            sys.excepthook = lambda *a: None
            assert len([1]) == 1
            """),
        "forge_marker": "import os\nos.write(3, b'D' + b'0' * 32 + b':' + str(os.getpid()).encode())\nos._exit(0)\n",
        "close_fds_then_exit": "import os\nos.closerange(0, 64)\nos._exit(0)\n",
    }


EXPECTED = {"infinite_loop": {Status.TIMEOUT}, "fork_bomb": {Status.TIMEOUT, Status.FAILED},
            "huge_output": {Status.FAILED}, "huge_stderr": {Status.FAILED}}


@pytest.fixture(scope="module")
def batch(decoys, server):
    progs = hostile_programs(decoys, server.getsockname()[1])
    names, programs = [], []
    for name, code in progs.items():  # a canary after every hostile program
        names += [name, f"canary_after_{name}"]
        programs += [code, CANARY]
    with Sandbox(SandboxConfig(timeout_s=TIMEOUT_S, workers=2, memory_mb=512, file_size_mb=16)) as sb:
        uids = {UID_BASE + w.proc.pid for w in sb._workers} if sb._workers[0].info["uid_drop"] else set()
        t0 = time.monotonic()
        results = sb.run_many(programs)
        elapsed = time.monotonic() - t0
        leftover_uid_pids = pids_of_uids(uids | {UID_BASE + w.proc.pid for w in sb._workers})
        after = sb.run_many([CANARY] * 4)
        level, tag = sb.level, sb.tag
    return {"results": dict(zip(names, results)), "elapsed": elapsed, "level": level, "tag": tag,
            "uid_drop": bool(uids), "leftover_uid_pids": leftover_uid_pids, "after": after}


def test_hostile_batch_within_bound(batch):
    assert batch["elapsed"] < HOSTILE_BATCH_BOUND_S, batch["elapsed"]


@pytest.mark.parametrize("name", list(hostile_programs({k: Path("/x") for k in ("home", "repo", "escape")}, 1)))
def test_hostile_program_fails_or_times_out(batch, name):
    r = batch["results"][name]
    assert r.status in EXPECTED.get(name, {Status.FAILED, Status.TIMEOUT}), (name, r)


def test_canaries_in_the_same_batch_unharmed(batch):
    canaries = {k: r for k, r in batch["results"].items() if k.startswith("canary_after_")}
    bad = {k: r for k, r in canaries.items() if not (r.passed and r.stdout == "canary ok\n")}
    assert not bad
    assert all(r.passed for r in batch["after"])


def test_no_leftover_processes(batch):
    assert wait_until(lambda: not [p for p, c in _procs() if SLEEP_MARK.encode() in c], 3.0)
    assert batch["leftover_uid_pids"] == []  # nothing ran on as a program's uid between batches
    assert wait_until(lambda: tagged_pids(batch["tag"]) == [], 5.0)


def test_host_files_unharmed(batch, decoys):
    for d in (decoys["home"], decoys["repo"]):
        assert (d / "sub" / "precious.txt").read_text() == "keep me"
    assert not decoys["escape"].exists()


def test_no_network(batch, server):
    if batch["level"] == "rlimits":
        pytest.skip("rlimits level has no network isolation (documented)")
    with pytest.raises(BlockingIOError):
        server.accept()  # nobody connected
    assert "canary" not in batch["results"]["socket"].stdout


def test_huge_output_was_capped(batch):
    r = batch["results"]["huge_output"]
    assert "output limit exceeded" in r.stderr and len(r.stdout) < 70000


# ------------------------------------------------------------------ lifecycle: Ctrl-C, host killed

HOST_SCRIPT = """
import sys
from domainspec.common.sandbox.pool import Sandbox, SandboxConfig
sb = Sandbox(SandboxConfig(workers=2, timeout_s=60))
print(sb.tag, sb.level, flush=True)
sb.run_many(["import os, time\\nif os.fork() == 0:\\n    os.setsid()\\ntime.sleep(60)"] * 6)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_or_killed_host_leaves_no_processes(sig):
    host = subprocess.Popen([sys.executable, "-c", HOST_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        tag, level = host.stdout.readline().split()
        assert tag.startswith("dssandbox-")
        per_worker = {"bwrap": 3, "namespaces": 2, "rlimits": 1}[level]  # launcher(s) + worker
        # wait until every worker's program forked its child and grandchild
        assert wait_until(lambda: len(tagged_pids(tag)) >= 2 * per_worker + 4, 10.0), tagged_pids(tag)
        host.send_signal(sig)
        host.wait(timeout=15)
        if sig == signal.SIGINT:
            assert host.returncode != 0  # KeyboardInterrupt propagated
        assert wait_until(lambda: tagged_pids(tag) == [], 10.0), tagged_pids(tag)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
