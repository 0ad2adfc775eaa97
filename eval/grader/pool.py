"""Process-level time limit for expensive equivalence checks: a pool of long-lived grader workers.

``GuardedPool.check(mode, pred, gold, timeout_s)`` sends one check to an idle worker process and
waits at most ``timeout_s``; a worker that runs over is killed (SIGKILL) and replaced, and the check
answers "not equal". Works from the main thread, from any thread, and inside process pools, because
the limit is the parent's wait on a pipe, not a signal handler (``signal.alarm`` only works on the
main thread and does not interrupt C-level work such as sympy's big-integer arithmetic).

Workers are ``python -m domainspec.eval.grader.pool`` subprocesses (fork+exec via ``subprocess``:
safe from threaded parents, allowed inside daemonic pool workers, no inherited locks), started
lazily on the first expensive check, with sympy preloaded; they exit when their stdin closes and
ask the kernel to kill them when the parent dies. A forked child (``os.fork``, fork-started
process pools) gets a fresh pool rather than the parent's pipes. Messages are JSON lines.

``check_body(mode, pred, gold)`` is the function the worker runs; calling it directly (no limit)
gives the same answer, which is how the tests compare paths.
"""
from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import threading
import time

STARTUP_TIMEOUT_S = 120.0


def check_body(mode: str, pred: str, gold: str) -> bool:
    if mode == "strict":
        from domainspec.eval.grader.equiv import strict_equiv

        return strict_equiv(pred, gold)
    if mode == "qwen-compat":
        from domainspec.eval.grader.qwen_compat import qwen_math_equal

        return qwen_math_equal(pred, gold)
    raise ValueError(f"unknown grader mode {mode!r}; expected 'strict' or 'qwen-compat'")


class _Worker:
    def __init__(self):
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "domainspec.eval.grader.pool"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, text=True, bufsize=1, close_fds=True)
        self.ready = False
        self.asked = 0

    def _readline(self, timeout_s: float) -> str | None:
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            return None
        return self.proc.stdout.readline()

    def wait_ready(self) -> bool:
        if not self.ready:
            self.ready = self._readline(STARTUP_TIMEOUT_S) == "ready\n"
        return self.ready

    def ask(self, mode: str, pred: str, gold: str, timeout_s: float) -> bool | None:
        """True/False, or None when the worker ran over the limit, died or answered out of turn.

        Requests carry a number the answer must repeat, so an answer is never taken for another
        check's (the worker's own stdout is not the channel: libraries that print cannot desync it)."""
        self.asked += 1
        try:
            self.proc.stdin.write(json.dumps([self.asked, mode, pred, gold]) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return None
        line = self._readline(timeout_s)
        try:
            number, answer = json.loads(line) if line else (None, None)
        except (ValueError, TypeError):
            return None
        return answer if number == self.asked else None

    def kill(self):
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass


class GuardedPool:
    def __init__(self, max_workers: int | None = None):
        self.max_workers = max_workers or max(1, min(4, os.cpu_count() or 1))
        self.idle: list[_Worker] = []
        self.all: set[_Worker] = set()
        self.cond = threading.Condition()
        self.pid = os.getpid()
        self.timeouts = 0
        self.closed = False

    def _acquire(self) -> _Worker:
        with self.cond:
            while True:
                if self.idle:
                    return self.idle.pop()
                if len(self.all) < self.max_workers:
                    worker = _Worker()
                    self.all.add(worker)
                    return worker
                self.cond.wait()

    def _release(self, worker: _Worker, healthy: bool):
        if healthy:
            with self.cond:
                self.idle.append(worker)
                self.cond.notify()
            return
        try:
            worker.proc.kill()  # SIGKILL now; reaping and the replacement happen off the caller's path
        except OSError:
            pass
        threading.Thread(target=self._replace, args=(worker,), daemon=True).start()

    def _replace(self, dead: _Worker):
        dead.kill()
        with self.cond:
            self.all.discard(dead)
            if self.pid == os.getpid() and len(self.all) < self.max_workers and not self.closed:
                replacement = _Worker()  # its sympy import overlaps the caller's next work
                self.all.add(replacement)
                self.idle.append(replacement)
            self.cond.notify()

    def check(self, mode: str, pred: str, gold: str, timeout_s: float) -> bool | None:
        """True/False, or None when the check ran over timeout_s (the worker is replaced)."""
        for attempt in (1, 2):
            worker = self._acquire()
            healthy = False
            try:
                if not worker.wait_ready():
                    raise RuntimeError("grader worker failed to start: "
                                       f"{sys.executable} -m domainspec.eval.grader.pool")
                answer = worker.ask(mode, pred, gold, timeout_s)
                healthy = answer is not None
                if answer is not None:
                    return bool(answer)
                if worker.proc.poll() is not None and attempt == 1:
                    continue  # the worker had died (not a timeout): the check gets one fresh worker
                self.timeouts += 1
                return None
            finally:
                self._release(worker, healthy)
        return None

    def close(self):
        with self.cond:
            self.closed = True
            workers, self.all, self.idle = list(self.all), set(), []
        for w in workers:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
            w.kill()


_POOL: GuardedPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> GuardedPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.pid != os.getpid():
            _POOL = GuardedPool()
        return _POOL


def _reset_after_fork():
    # the child must not talk to the parent's workers through inherited pipes
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


@atexit.register
def _close_pool():
    if _POOL is not None and _POOL.pid == os.getpid():
        _POOL.close()


def _die_with_parent():
    """Exit this worker soon after its parent process exits (no orphan left computing).

    Not PR_SET_PDEATHSIG: that signal follows the parent *thread*, and workers are started from
    whichever thread needs one (``grade_many``'s pool threads), so they were killed as soon as
    that thread ended and the next check on them found a dead pipe. A watchdog thread polls the
    parent pid instead; ``os._exit`` ends the process even while sympy holds the main thread."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _worker_main():
    _die_with_parent()
    sys.setrecursionlimit(10000)
    import sympy  # noqa: F401  (preloaded so the first check is not charged for the import)

    import domainspec.eval.grader.equiv  # noqa: F401
    from domainspec.eval.grader.qwen_compat import warm_up

    # the answers go to a private copy of stdout; fd 1 itself now points at stderr (discarded), so
    # whatever a parser prints (Python or C level) never lands in the answer channel
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    warm_up()  # sympy's LaTeX parser loads its ANTLR grammar on first use (~1 s): not charged to a check
    out.write("ready\n")
    for line in sys.stdin:
        number, mode, pred, gold = json.loads(line)
        try:
            answer = bool(check_body(mode, pred, gold))
        except Exception:  # a check that crashes is "not equal", never a crashed worker
            answer = False
        out.write(json.dumps([number, answer]) + "\n")


if __name__ == "__main__":
    _worker_main()
