"""Grader throughput: checks per second of `strict` and `qwen-compat` against math-verify.

    python bench/bench_grader.py [--data ../shared/data/math/math500_test.jsonl] [--limit N]

Input: MATH-500 gold answers, each rewritten into equivalent forms a model would write (fraction
<-> decimal, reordered sums, ``\\dfrac``, a boxed answer inside a sentence with a ``\\text{}``
unit), one reply per form. A check = extract the answer from the reply + decide equivalence with
the gold; every system sees the same pairs, one at a time on one thread, after a warm-up (our
grader worker started, math-verify imported), with our result cache cleared and duplicate pairs
removed. Prints checks/s, the share of pairs each system judges equal (all pairs are equivalent, so
higher is better) and our speed ratio over math-verify (target >= 2x).

math-verify is a benchmark-only dependency, never a project one: if it is missing the script says
how to install it (``pip install math-verify``) and measures our grader alone.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "math" / "math500_test.jsonl"


def _split_sum(s: str) -> list[str] | None:
    """Top-level terms of a sum, signs kept: "x^2 - 3x + 1" -> ["x^2", "- 3x", "+ 1"]."""
    terms, depth, last = [], 0, 0
    for i, c in enumerate(s):
        depth += c in "({["
        depth -= c in ")}]"
        if depth == 0 and c in "+-" and i > 0 and s[i - 1] not in "^_{(" and s[last:i].strip():
            terms.append(s[last:i].strip())
            last = i
    terms.append(s[last:].strip())
    return terms if len(terms) > 1 else None


def rewrites(gold: str) -> list[tuple[str, str]]:
    """(kind, equivalent form) of a gold answer (only rewrites that are certainly equal)."""
    forms = []
    m = re.fullmatch(r"\\[dt]?frac\{?(-?\d+)\}?\{?(\d+)\}?|\\frac(\d)(\d)", gold.strip())
    if m:
        num, den = (int(g) for g in (m.groups()[:2] if m.group(1) else m.groups()[2:]))
        value = Fraction(num, den)
        d = value.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d == 1:  # terminating: write it as a decimal
            forms.append(("decimal", f"{float(value):.10g}"))
        forms.append(("fraction", f"{num * 3}/{den * 3}"))
    if re.fullmatch(r"-?\d+", gold.strip()):
        forms.append(("decimal", f"{gold.strip()}.0"))
        forms.append(("fraction", f"\\frac{{{2 * int(gold)}}}{{2}}"))
    terms = _split_sum(gold)
    if terms and not re.search(r"[=,<>]|\\pm|\\mp|\\begin|\\cup|\\\\", gold):
        first = terms[0] if terms[0][0] in "+-" else "+ " + terms[0]
        forms.append(("reordered sum", " ".join([terms[-1].lstrip("+ ")] + terms[1:-1] + [first])))
    if "\\frac" in gold:
        forms.append(("dfrac", gold.replace("\\frac", "\\dfrac")))
    unit = "\\text{ units}" if re.fullmatch(r"-?[\d.]+", gold.strip()) else ""
    forms.append(("boxed with text", f"Putting it together, the final answer is $\\boxed{{{gold}{unit}}}$."))
    return forms


def build_pairs(data: Path, limit: int | None) -> list[tuple[str, str, str]]:
    rows = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    pairs, seen = [], set()
    for row in rows[:limit]:
        for kind, form in rewrites(row["answer"]):
            reply = form if "boxed" in form else f"So the answer is ${form}$."
            if (reply, row["answer"]) not in seen:
                seen.add((reply, row["answer"]))
                pairs.append((kind, reply, row["answer"]))
    return pairs


def _run(check, pairs) -> dict[str, tuple[float, float]]:
    """kind -> (checks/s, share judged equal); kind "all" for everything."""
    times: dict[str, list[float]] = {}
    hits: dict[str, int] = {}
    for kind, reply, gold in pairs:
        start = time.perf_counter()
        ok = check(reply, gold)
        elapsed = time.perf_counter() - start
        for k in (kind, "all"):
            times.setdefault(k, []).append(elapsed)
            hits[k] = hits.get(k, 0) + bool(ok)
    return {k: (len(t) / sum(t), hits[k] / len(t)) for k, t in times.items()}


def bench_ours(mode: str, pairs):
    from domainspec.eval.grader import math_grader
    from domainspec.eval.grader.math_grader import MathGrader

    grader = MathGrader(mode)
    grader.grade("so \\boxed{x+1}", "1+x")  # start the worker outside the timing
    math_grader._cache.clear()
    return _run(lambda reply, gold: grader.grade(reply, gold).correct, pairs)


def bench_math_verify(pairs):
    try:
        from math_verify import parse, verify
    except ImportError:
        print("math-verify is not installed (benchmark-only dependency): pip install math-verify")
        return None
    verify(parse("$x+1$"), parse("$1+x$"))
    return _run(lambda reply, gold: verify(parse(f"${gold}$"), parse(reply)), pairs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--limit", type=int, default=None, help="use the first N problems")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"MATH-500 file not found: {args.data}", file=sys.stderr)
        return 2
    pairs = build_pairs(args.data, args.limit)
    print(f"{len(pairs)} (reply, gold) pairs from {args.data.name}, all equivalent; 1 thread")
    results = {mode: bench_ours(mode, pairs) for mode in ("strict", "qwen-compat")}
    mv = bench_math_verify(pairs)
    if mv:
        results["math-verify"] = mv
    kinds = ["all"] + sorted({kind for kind, _, _ in pairs})
    print(f"{'rewrite':<17}{'pairs':>6}{'grader':>13}{'checks/s':>10}{'judged equal':>14}{'vs math-verify':>16}")
    for kind in kinds:
        n = len(pairs) if kind == "all" else sum(k == kind for k, _, _ in pairs)
        for name, table in results.items():
            rate, acc = table[kind]
            ratio = f"{rate / mv[kind][0]:.2f}x" if mv else "-"
            print(f"{kind:<17}{n:>6}{name:>13}{rate:>10.1f}{acc:>13.1%}{ratio:>16}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
