"""Sandbox worker: one long-lived, isolated process that forks a fresh child per program.

Started by :class:`domainspec.common.sandbox.pool.Sandbox` (inside bwrap or namespaces when the
machine offers them) as ``python -I worker.py CONFIG_JSON``. It is deliberately
self-contained (standard library only, no ``domainspec`` imports) so it starts fast and
runs the same inside every isolation level, and it stays one file past ~400 lines because
``-I`` keeps the script's folder off ``sys.path``, so it cannot import a sibling module.
The host imports :func:`pop_line` and :func:`pid_namespace` from here instead of keeping copies.

Protocol (JSON lines; never pickle, so a compromised worker cannot run code in the host):
  host -> worker  ``{"uid": int | null}`` once, then ``{"program": str, "timeout_s": float}``
                  (Python) or ``{"program": {"files": [[name, text], ...], "compile": argv | null,
                  "run": argv, "env": {...}, "memory": "as" | "data", "compile_timeout_s": float},
                  "timeout_s": float}`` (any other language: files written, compiled, run; see
                  ``domainspec.common.sandbox.program``)
  worker -> host  ``{"ready": true, ...}`` once, then one result object per request.
When its stdin reaches EOF (the host exited or was killed) the worker kills its program
and exits; inside a PID namespace everything left dies with it.

Per program: a private temporary directory, a child in its own session/process group,
stdin /dev/null, stdout/stderr through pipes (tails kept, capped), rlimits (address space,
CPU, file size, processes, no core), a scrubbed environment, no_new_privs and - when the
worker runs as root - a uid of its own (so RLIMIT_NPROC binds, the child cannot touch
root-owned files, signal or ptrace the worker) keeping only CAP_DAC_READ_SEARCH so imports
from a root-only Python install still work. PASSED needs a completion marker that the child
writes after the program's last statement (see :func:`untrusted_child`). Every leftover
process is killed and reaped before the next program starts.
"""
from __future__ import annotations

import builtins
import ctypes
import gc
import json
import os
import resource
import select
import shutil
import signal
import stat
import sys
import tempfile
import time

# Imports HumanEval/MBPP-style checkers use: loaded once here, so each forked child has them.
PRELOAD = ("bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal",
           "fractions", "functools", "hashlib", "heapq", "itertools", "json", "math", "operator",
           "random", "re", "statistics", "string", "textwrap", "traceback", "typing")

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_KEEPCAPS = 1, 4, 8
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 36, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 47, 2
CAP_DAC_READ_SEARCH = 2
STATUS_FD = 3  # the child's completion channel
EXIT_SETUP_FAILED = 71
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int = 0) -> bool:
    return _libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0) == 0


def _keep_only_dac_read_search() -> bool:
    """After setuid with KEEPCAPS: effective=permitted=inheritable=ambient={DAC_READ_SEARCH}."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    bit = 1 << CAP_DAC_READ_SEARCH
    data = (Data * 2)(Data(bit, bit, bit), Data(0, 0, 0))
    if _libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:
        return False
    # ambient keeps the capability across execve (a program running `python -c ...`)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH, 0, 0)
    return True


def _drop_privileges(uid: int) -> None:
    _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    # KEEPCAPS left every capability in the permitted set: failing to narrow it must be fatal
    if not _keep_only_dac_read_search():
        raise OSError(ctypes.get_errno(), "capset failed after setuid")
    _prctl(PR_SET_KEEPCAPS, 0)


def _set_limits(lim: dict, timeout_s: float, memory: str = "as") -> None:
    """``memory``: "as" puts memory_mb on the address space (Python, C++...); "data" on RLIMIT_DATA
    (private writable memory) with the address space unlimited, for the JVM, Go and V8, which
    reserve tens of GiB of address space they never touch."""
    cpu = int(timeout_s) + 2
    mem_bytes = lim["memory_mb"] * 1024 * 1024
    fsize = lim["file_size_mb"] * 1024 * 1024
    mem_res = resource.RLIMIT_AS if memory == "as" else resource.RLIMIT_DATA
    for res, value in ((mem_res, mem_bytes), (resource.RLIMIT_FSIZE, fsize),
                       (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NPROC, lim["max_processes"])):
        resource.setrlimit(res, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def _env(tmp: str) -> dict:
    """The scrubbed environment of every program: its private directory is $HOME and $TMPDIR, so
    tools that write caches under them (Go's build cache, npm, javac) write inside it."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp,
            "XDG_CACHE_HOME": os.path.join(tmp, ".cache"), "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _enter_jail(tmp: str, lim: dict, timeout_s: float, fds: tuple, uid: int | None, env: dict,
                memory: str = "as") -> None:
    """In a forked child: own session, fds 0-3, private cwd, scrubbed env, rlimits, own uid, no_new_privs."""
    out_w, err_w, status_w = fds
    os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.dup2(status_w, STATUS_FD)
    os.closerange(STATUS_FD + 1, 1 << 16)
    os.chdir(tmp)
    os.environ.clear()
    os.environ.update(env)
    for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _set_limits(lim, timeout_s, memory)
    if uid is not None:
        _drop_privileges(uid)
        _prctl(PR_SET_DUMPABLE, 1)  # own /proc/self readable again after the uid change
    _prctl(PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries cannot give root back
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it


def untrusted_exec_child(argv: list, files: list, extra_env: dict, tmp: str, lim: dict, timeout_s: float,
                         fds: tuple, uid: int | None, memory: str) -> None:
    """Runs in the forked child and never returns: enter the jail, write ``files`` (as the program's
    uid, so RLIMIT_FSIZE binds), then execve ``argv`` (a compiler, or a compiled/interpreted program)."""
    write, _exit = os.write, os._exit
    try:
        _enter_jail(tmp, lim, timeout_s, fds, uid, {**_env(tmp), **extra_env}, memory)
        for name, text in files:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            data = text.encode("utf-8", errors="surrogatepass")
            while data:
                data = data[os.write(fd, data):]
            os.close(fd)
        os.set_inheritable(STATUS_FD, False)  # the program never holds its verdict channel
        os.execve(argv[0], argv, os.environ)
    except BaseException as e:  # noqa: BLE001 - setup or exec failure, reported as ERROR
        write(2, f"[sandbox] could not start {argv[0]}: {e!r}\n".encode(errors="replace"))
        write(STATUS_FD, b"E")
    _exit(EXIT_SETUP_FAILED)


def untrusted_child(program: str, tmp: str, lim: dict, timeout_s: float, fds: tuple,
                    marker: bytes, uid: int | None) -> None:
    """Runs in the forked child and never returns: set up the jail, then exec the program."""
    write, _exit = os.write, os._exit  # held here: the program may monkeypatch os/sys
    try:
        _enter_jail(tmp, lim, timeout_s, fds, uid, _env(tmp))
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False, encoding="utf-8", errors="backslashreplace")
        sys.stderr = open(2, "w", closefd=False, encoding="utf-8", errors="backslashreplace")
        sys.argv = ["<program>"]
        tempfile.tempdir = tmp
    except BaseException as e:  # noqa: BLE001 - infrastructure failure, reported as ERROR
        write(2, f"[sandbox] child setup failed: {e!r}\n".encode())
        _exit(EXIT_SETUP_FAILED)
    try:
        code = compile(program, "<program>", "exec")
    except BaseException as e:  # noqa: BLE001 - SyntaxError, ValueError (NUL), MemoryError...
        write(2, f"{type(e).__name__}: {e}\n".encode(errors="replace"))
        write(STATUS_FD, b"S")
        _exit(2)
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        _exit(status & 0xFF)
    except BaseException as e:  # noqa: BLE001 - any program failure
        try:
            import traceback
            traceback.print_exception(type(e), e, e.__traceback__.tb_next)  # skip this frame
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - the program may have broken traceback/stderr
            write(2, f"{type(e).__name__}\n".encode())
        _exit(1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    write(STATUS_FD, marker + str(os.getpid()).encode())
    _exit(0)


class _Tail:
    """Keeps the last ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.cap, self.buf, self.total = cap, bytearray(), 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        self.buf += data
        if len(self.buf) > self.cap:
            del self.buf[: len(self.buf) - self.cap]

    def text(self) -> str:
        s = self.buf.decode("utf-8", errors="replace")
        dropped = self.total - len(self.buf)
        return f"[... {dropped} bytes dropped ...]\n{s}" if dropped else s


class Worker:
    def __init__(self, cfg: dict, cmd_fd: int, out_fd: int):
        self.cfg, self.cmd_fd, self.out_fd = cfg, cmd_fd, out_fd
        self.inbuf = bytearray()
        self.uid: int | None = None
        self.in_pidns = cfg.get("host_pidns") not in (None, pid_namespace())
        self.spare_tmp: str | None = None  # an empty program directory to reuse

    # ------------------------------------------------------------- host channel
    def send(self, obj: dict) -> None:
        data = (json.dumps(obj) + "\n").encode()
        while data:
            data = data[os.write(self.out_fd, data):]

    def readline(self) -> bytes | None:
        while (line := pop_line(self.inbuf)) is None:
            chunk = os.read(self.cmd_fd, 1 << 20)
            if not chunk:
                return None
            self.inbuf += chunk
        return line

    def host_gone(self) -> bool:
        """Called when cmd_fd is readable during a program: EOF means the host died."""
        chunk = os.read(self.cmd_fd, 1 << 20)
        self.inbuf += chunk
        return not chunk

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of a program come back to us to be killed
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        init = self.readline()
        if init is None:
            return
        uid = json.loads(init).get("uid")
        if uid is not None and os.geteuid() == 0 and self._probe_uid(uid):
            self.uid = uid
        if self.uid is None:
            _prctl(PR_SET_DUMPABLE, 0)  # same-uid children must not ptrace us
        self.send({"ready": True, "pid": os.getpid(), "uid_drop": self.uid is not None,
                   "pidns": self.in_pidns})
        while (line := self.readline()) is not None:
            req = json.loads(line)
            self.send(self.run_one(req["program"], float(req["timeout_s"])))
        if self.spare_tmp:
            shutil.rmtree(self.spare_tmp, ignore_errors=True)

    def _probe_uid(self, uid: int) -> bool:
        """Can a child take ``uid`` and still read the Python install (e.g. under /root)?"""
        pid = os.fork()
        if pid == 0:
            try:
                _drop_privileges(uid)
                os.listdir(os.path.dirname(os.__file__))
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        return os.waitpid(pid, 0)[1] == 0

    # ------------------------------------------------------------- one program
    def run_one(self, program, timeout_s: float) -> dict:
        """``program``: Python source (str) or a compiled-language request (dict, see the protocol)."""
        tmp = self._fresh_tmp()
        try:
            if isinstance(program, dict):
                return self._run_compiled(program, tmp, timeout_s)
            return self._run_python(program, tmp, timeout_s)
        finally:
            self._recycle_tmp(tmp)

    def _step(self, target, timeout_s: float) -> dict:
        """Fork ``target(fds)`` (a child that never returns) and follow it to its end: output tails,
        exit code, status-fd bytes; every process it left is killed and reaped."""
        lim = self.cfg["limits"]
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        st_r, st_w = os.pipe()
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                target((out_w, err_w, st_w))
            finally:
                os._exit(EXIT_SETUP_FAILED)
        for fd in (out_w, err_w, st_w):
            os.close(fd)
        streams = {out_r: _Tail(lim["max_output_bytes"]), err_r: _Tail(lim["max_output_bytes"]),
                   st_r: _Tail(4096)}
        timed_out, overflow = self._watch(pid, streams, t0 + timeout_s)
        duration = time.monotonic() - t0
        _kill_group(pid)  # before reaping: the unreaped child keeps its pid (and group id) ours
        wait_status = os.waitpid(pid, 0)[1]
        self._kill_leftovers()
        self._drain(streams)
        return {"pid": pid, "timed_out": timed_out, "overflow": overflow, "duration": duration,
                "code": os.waitstatus_to_exitcode(wait_status), "status": bytes(streams[st_r].buf),
                "stdout": streams[out_r], "stderr": streams[err_r]}

    def _run_python(self, program: str, tmp: str, timeout_s: float) -> dict:
        lim = self.cfg["limits"]
        marker = b"D" + os.urandom(16).hex().encode() + b":"
        r = self._step(lambda fds: untrusted_child(program, tmp, lim, timeout_s, fds, marker, self.uid),
                       timeout_s)
        code, status_bytes, stderr, timed_out = r["code"], r["status"], r["stderr"], r["timed_out"]
        if timed_out:
            status = "timeout"
            stderr.add(f"\n[sandbox] wall-clock limit of {timeout_s:g}s reached\n".encode())
        elif status_bytes == b"S":
            status = "error"
        elif code == EXIT_SETUP_FAILED and not status_bytes:
            status = "error"
        elif r["overflow"]:
            status = "failed"
            stderr.add(b"\n[sandbox] output limit exceeded, program killed\n")
        elif code == 0 and status_bytes == marker + str(r["pid"]).encode():
            status = "passed"
        else:
            status = "failed"
            if code == 0:
                stderr.add(b"\n[sandbox] exited with status 0 before its last statement\n")
            elif code < 0:
                stderr.add(f"\n[sandbox] killed by signal {signal.Signals(-code).name}\n".encode())
        return {"status": status, "stdout": r["stdout"].text(), "stderr": stderr.text(),
                "exit_code": None if timed_out else code, "duration_s": r["duration"]}

    def _run_compiled(self, req: dict, tmp: str, timeout_s: float) -> dict:
        """Write the files, compile (its own limit; any failure is ERROR), run (PASSED iff exit 0)."""
        lim, uid, memory = self.cfg["limits"], self.uid, req.get("memory", "as")
        env = {str(k): str(v).replace("{dir}", tmp) for k, v in (req.get("env") or {}).items()}
        files = [(str(n), str(t)) for n, t in req["files"]]

        def argv(cmd):
            return [str(a).replace("{dir}", tmp) for a in cmd]

        compile_s = None
        if req.get("compile"):
            limit = float(req["compile_timeout_s"])
            c = self._step(lambda fds: untrusted_exec_child(argv(req["compile"]), files, env, tmp, lim, limit,
                                                            fds, uid, memory), limit)
            compile_s = c["duration"]
            if c["timed_out"] or c["overflow"] or c["code"] != 0 or c["status"]:
                out = c["stdout"].text() + c["stderr"].text()
                if c["timed_out"]:
                    why = f"compile step exceeded its limit of {limit:g}s"
                elif c["overflow"]:
                    why = "compiler output limit exceeded"
                else:
                    why = "compile error: " + _last_error_line(out)
                return {"status": "error", "stdout": "", "stderr": f"{out}\n[sandbox] {why}\n",
                        "exit_code": None if c["timed_out"] else c["code"], "duration_s": compile_s,
                        "compile_s": compile_s}
            files = []  # written by the compile step
        r = self._step(lambda fds: untrusted_exec_child(argv(req["run"]), files, env, tmp, lim, timeout_s,
                                                        fds, uid, memory), timeout_s)
        code, stderr = r["code"], r["stderr"]
        if r["timed_out"]:
            status = "timeout"
            stderr.add(f"\n[sandbox] wall-clock limit of {timeout_s:g}s reached\n".encode())
        elif r["status"]:
            status = "error"
        elif r["overflow"]:
            status = "failed"
            stderr.add(b"\n[sandbox] output limit exceeded, program killed\n")
        else:
            status = "passed" if code == 0 else "failed"
            if code < 0:
                stderr.add(f"\n[sandbox] killed by signal {signal.Signals(-code).name}\n".encode())
        return {"status": status, "stdout": r["stdout"].text(), "stderr": stderr.text(),
                "exit_code": None if r["timed_out"] else code, "duration_s": r["duration"], "compile_s": compile_s}

    def _fresh_tmp(self) -> str:
        if self.spare_tmp is not None:
            tmp, self.spare_tmp = self.spare_tmp, None
            return tmp
        tmp = tempfile.mkdtemp(prefix="prog-", dir=self.cfg["tmp_base"])
        if self.uid is not None:
            os.chown(tmp, self.uid, self.uid)
        return tmp

    def _recycle_tmp(self, tmp: str) -> None:
        """Reuse the directory for the next program only if it is empty and as we made it
        (saves a mkdir/rmdir pair, slow on some filesystems); otherwise remove it."""
        owner = self.uid if self.uid is not None else os.geteuid()
        try:
            st = os.lstat(tmp)
            if (stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
                    and st.st_uid == owner and not os.listdir(tmp)):
                self.spare_tmp = tmp
                return
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)

    def _watch(self, pid: int, streams: dict, deadline: float):
        """Read output until the child exits, the deadline passes or output overflows."""
        kill_bytes = max(16 << 20, 4 * self.cfg["limits"]["max_output_bytes"])
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        open_fds, total = set(streams), 0
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True, False
                watch = [*open_fds, self.cmd_fd] + ([pidfd] if pidfd is not None else [])
                ready, _, _ = select.select(watch, [], [], remaining if pidfd is not None
                                            else min(remaining, 0.005))
                for fd in ready:
                    if fd == self.cmd_fd:
                        if self.host_gone():
                            _kill_group(pid)
                            self._kill_leftovers()
                            os._exit(0)
                    elif fd != pidfd:
                        data = os.read(fd, 1 << 16)
                        if not data:
                            open_fds.discard(fd)
                        else:
                            streams[fd].add(data)
                            total += len(data)
                if total > kill_bytes:
                    return False, True
                # WNOWAIT leaves the zombie in place so its pid cannot be reused before we kill its group
                if (pidfd in ready or pidfd is None) and os.waitid(
                        os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return False, False
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def _drain(self, streams: dict) -> None:
        deadline = time.monotonic() + 0.5
        open_fds = set(streams)
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.05)
            for fd in ready:
                data = os.read(fd, 1 << 16)
                if data:
                    streams[fd].add(data)
                else:
                    open_fds.discard(fd)
        for fd in streams:
            os.close(fd)

    def _kill_leftovers(self) -> None:
        """Kill and reap everything the (already reaped) program started, however it detached."""
        for _ in range(1000):
            try:
                done, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return  # no descendant left: any survivor would have been reparented to us
            if done:
                continue
            self._kill_all_descendants()
            time.sleep(0.001)

    def _kill_all_descendants(self) -> None:
        if self.uid is not None:
            # a helper with the program's uid can signal exactly the program's processes
            helper = os.fork()
            if helper == 0:
                try:
                    os.setgroups([])
                    os.setgid(self.uid)
                    os.setuid(self.uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(helper, 0)
        elif self.in_pidns and os.getpid() <= 2:
            os.kill(-1, signal.SIGKILL)  # inside our PID namespace: all but init and us
        else:  # rlimits level without root: our direct children (orphans come to us)
            me = str(os.getpid())
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            ppid = f.read().rsplit(")", 1)[1].split()[1]
                        if ppid == me:
                            os.kill(int(entry), signal.SIGKILL)
                    except (OSError, IndexError):
                        pass


_SUMMARY = ("aborting due to", "compilation terminated", "build failed", "errors generated", "error(s)",
            "for more information about this error", "errors parsing")


def _last_error_line(output: str) -> str:
    """The compiler's last error line: naming an error or located at ``file:line:col:`` (Go), not a
    summary ("aborting due to 1 previous error", "1 error"); else its last line. Cut to 300 chars."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ("error" in ln.lower() or _located(ln))
              and not any(s in ln.lower() for s in _SUMMARY) and not ln.split(" ")[0].isdigit()
              and not ln.lower().startswith("found ")]
    return (errors or lines or ["(no output)"])[-1][:300]


def _located(line: str) -> bool:
    """``path:line:col: message`` with a path of no spaces (not rustc's `` --> main.rs:9:1`` pointer)."""
    head = line.split(": ", 1)[0].split(":")
    return len(head) >= 3 and head[-1].isdigit() and head[-2].isdigit() and not any(c.isspace() for c in head[0])


def _kill_group(pid: int) -> None:
    """Only for a child not yet reaped, so ``pid`` cannot belong to anyone else."""
    for kill in (os.killpg, os.kill):  # the group, and the child itself in case setsid never ran
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


def pop_line(buf: bytearray) -> bytes | None:
    """Remove the first newline-terminated line from ``buf`` and return it without the newline;
    None (``buf`` unchanged) while no complete line has arrived. The JSON-lines framing of both ends."""
    end = buf.find(b"\n")
    if end < 0:
        return None
    line = bytes(buf[:end])
    del buf[:end + 1]
    return line


def pid_namespace() -> str | None:
    """This process's PID namespace (``pid:[inode]``), or None where /proc cannot tell."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def main() -> None:
    cfg = json.loads(sys.argv[1])
    # the host channel moves off fds 0/1 so nothing stray can corrupt it
    cmd_fd, out_fd = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the host decides when we stop
    for name in PRELOAD:
        __import__(name)
    gc.collect()
    gc.freeze()  # the collector in each child leaves the preloaded objects (and their pages) alone
    Worker(cfg, cmd_fd, out_fd).start()


if __name__ == "__main__":
    main()
