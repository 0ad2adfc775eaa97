"""``domainspec eval score`` and ``domainspec eval generate``: parse arguments and call.

Usage::

    domainspec eval score --benchmark humaneval --samples S.jsonl --k 1,10 --out DIR
    domainspec eval generate --benchmark gsm8k --model tiny --n 1 --limit 5 --out S.jsonl

Scoring lives in :mod:`domainspec.eval.scoring`, generation in
:mod:`domainspec.eval.generate`; both are imported inside the handlers so that
``domainspec --help`` stays fast. A bad data or samples file prints one error line
naming the file and line and exits with status 2.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import sys

def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--k expects comma-separated integers like 1,10; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise argparse.ArgumentTypeError(f"--k values must be integers >= 1; got {text!r}")
    return ks


def register(subparsers) -> None:
    from typing import get_args

    from domainspec.common.models.sampling import add_sampling_args
    from domainspec.eval.benchmarks.registry import benchmark_names  # light: benchmark modules import nothing heavy
    from domainspec.eval.grader.math_grader import GraderMode

    names = benchmark_names()
    p = subparsers.add_parser("eval", help="score samples on a benchmark, or generate samples with a model")
    sub = p.add_subparsers(dest="eval_command", metavar="{score,generate,compare}")

    s = sub.add_parser("score", help="execute/grade a samples file; write results.jsonl, summary.json, report.md")
    s.add_argument("--benchmark", required=True, choices=names)
    s.add_argument("--samples", required=True, help="JSONL rows {task_id, completion[, score, style]}")
    s.add_argument("--data", default=None, help="benchmark file, folder or hub name (HumanEval: packaged copy)")
    s.add_argument("--k", type=_ks, default=(1,), help="pass@k values, comma-separated (default 1)")
    s.add_argument("--grader", choices=get_args(GraderMode), default="strict", help="math answer grader mode")
    s.add_argument("--timeout", type=float, default=None, help="per-program wall-clock limit in seconds (code)")
    s.add_argument("--workers", type=int, default=None, help="parallel sandbox workers (default: CPU count)")
    s.add_argument("--limit", type=int, default=None, help="score only the first L tasks of the data")
    s.add_argument("--split", default=None, help="data split (MBPP: test|validation|train|prompt|all; default test)")
    s.add_argument("--style", choices=("base", "chat"), default=None,
                   help="generation style of the samples, for the protocol in the report (default: samples' 'style')")
    s.add_argument("--out", required=True, help="output folder")
    s.set_defaults(func=_score)

    g = sub.add_parser("generate", help="sample completions for a benchmark with a model")
    g.add_argument("--benchmark", required=True, choices=names)
    g.add_argument("--model", required=True, help="HF folder, hub name, *.gguf file, or 'tiny'")
    g.add_argument("--gguf-file", default=None, help="GGUF file name inside --model's folder")
    g.add_argument("--data", default=None, help="benchmark file, folder or hub name")
    add_sampling_args(g)
    g.add_argument("--style", choices=("base", "chat", "auto"), default="auto",
                   help="prompt style: few-shot/continuation (base), chat template (chat), or by tokenizer (auto)")
    g.add_argument("--limit", type=int, default=None, help="only the first L tasks")
    g.add_argument("--split", default=None, help="data split (MBPP: test|validation|train|prompt|all)")
    g.add_argument("--out", required=True, help="samples JSONL (resumed: samples already there are kept)")
    g.set_defaults(func=_generate)

    c = sub.add_parser("compare", help="two scored runs side by side: each metric's difference with its 95% interval")
    c.add_argument("a", help="run A: a scoring folder (summary.json, per_task.json) or its summary.json")
    c.add_argument("b", help="run B, the same")
    c.add_argument("--out", default=None, help="also write the comparison as JSON here")
    c.set_defaults(func=_compare)


def _score(args: argparse.Namespace) -> int:
    from domainspec.eval.datafiles import EvalDataError
    from domainspec.eval.benchmarks.base import Kind
    from domainspec.eval.benchmarks.registry import get_benchmark
    from domainspec.eval.scoring import score

    sandbox_config = None
    if get_benchmark(args.benchmark).kind is Kind.CODE:
        from domainspec.common.sandbox.pool import SandboxConfig

        overrides = {k: v for k, v in (("timeout_s", args.timeout), ("workers", args.workers)) if v is not None}
        sandbox_config = SandboxConfig(**overrides)
    try:
        summary = score(args.benchmark, args.samples, args.out, data_path=args.data, ks=args.k,
                        grader_mode=args.grader, sandbox_config=sandbox_config, limit=args.limit,
                        split=args.split, style=args.style)
    except EvalDataError as e:
        print(f"domainspec eval score: error: {e}", file=sys.stderr)
        return 2
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in summary["metrics"].items())
    print(f"{summary['benchmark']}: {summary['num_tasks']} tasks, {summary['num_samples']} samples: {metrics}")
    print(f"wrote {args.out}/results.jsonl, summary.json, report.md")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from domainspec.common.models.sampling import sampling_from_args
    from domainspec.eval.datafiles import EvalDataError
    from domainspec.eval.generate import benchmark_run, generate_for_benchmark

    try:
        with benchmark_run(args.benchmark, args.model, sampling_from_args(args), args.data, args.split, args.limit,
                           args.style, args.gguf_file) as run:
            rows = generate_for_benchmark(run, args.out)
    except EvalDataError as e:
        print(f"domainspec eval generate: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.benchmark}: {len(rows)} samples in {args.out}")
    return 0


def _read_run(path: str) -> tuple[dict, dict | None]:
    from domainspec.common.artifacts import read_json
    from domainspec.eval.datafiles import EvalDataError

    p = Path(path)
    summary_path = p / "summary.json" if p.is_dir() else p
    if not summary_path.is_file():
        raise EvalDataError(f"{path}: no summary.json (give a scoring output folder or its summary.json)")
    summary = read_json(summary_path)
    if not isinstance(summary, dict) or "metrics" not in summary:
        raise EvalDataError(f"{summary_path}: not a scoring summary (no 'metrics')")
    per_task = summary_path.parent / "per_task.json"
    return summary, read_json(per_task) if per_task.is_file() else None


def _compare(args: argparse.Namespace) -> int:
    import json

    from domainspec.eval.datafiles import EvalDataError
    from domainspec.eval.uncertainty import compare, setting_differences

    try:
        (a, pa), (b, pb) = _read_run(args.a), _read_run(args.b)
    except EvalDataError as e:
        print(f"domainspec eval compare: error: {e}", file=sys.stderr)
        return 2
    if a.get("benchmark") != b.get("benchmark"):
        print(f"domainspec eval compare: error: different benchmarks ({a.get('benchmark')} vs {b.get('benchmark')})",
              file=sys.stderr)
        return 2
    rows = compare(a, b, pa, pb)
    diffs = setting_differences(a, b)
    print(f"{a['benchmark']}: A = {args.a}, B = {args.b}")
    print(f"{'metric':10s} {'A':>8s} {'B':>8s} {'B - A':>8s}  95% interval of B - A")
    for r in rows:
        ci = r["ci95"]
        how = f"paired over {r['paired_tasks']} tasks" if r["paired_tasks"] else "from the stderrs"
        verdict = "same" if r.get("same") else ("differs" if r["significant"] else "within noise")
        print(f"{r['metric']:10s} {r['a']:8.4f} {r['b']:8.4f} {r['diff']:+8.4f}  "
              f"{f'[{ci[0]:+.4f}, {ci[1]:+.4f}] ({how})' if ci else '(no interval)'}  {verdict}")
    print("settings: identical" if not diffs else "settings that differ:")
    for key, x, y in diffs:
        print(f"  {key}: {x!r} -> {y!r}")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "setting_differences": [list(d) for d in diffs]},
                                             indent=2, default=str) + "\n")
    return 0
