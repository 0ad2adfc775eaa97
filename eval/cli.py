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
    sub = p.add_subparsers(dest="eval_command", metavar="{score,generate}")

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
        run = benchmark_run(args.benchmark, args.model, sampling_from_args(args), args.data, args.split, args.limit,
                            args.style, args.gguf_file)
        rows = generate_for_benchmark(run, args.out)
    except EvalDataError as e:
        print(f"domainspec eval generate: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.benchmark}: {len(rows)} samples in {args.out}")
    return 0
