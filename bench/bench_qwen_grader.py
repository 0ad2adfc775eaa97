"""qwen-compat and strict against Qwen2.5-Math's own harness, per benchmark, in one run.

    python bench/bench_qwen_grader.py --qwen-eval PATH/Qwen2.5-Math/evaluation [--per-benchmark N]
        [--data ../shared/data] [--workers 2] [--out bench_qwen_grader.json]

The peer is the harness's ``parser.py`` and ``grader.py``, loaded from ``--qwen-eval`` (a
checkout of QwenLM/Qwen2.5-Math's ``evaluation/`` folder the user gives; nothing of it is in this
repository). Its ``latex2sympy`` folder is put on ``sys.path`` when present; when it is not, a
stand-in whose ``latex2sympy`` raises is used and the report says so (the harness then relies on
sympy's LaTeX parser and ``parse_expr``, which come first in its chain anyway). ``utils`` (used by
``parser.py`` only for prompt helpers) is stubbed when it cannot be imported.

Rows, each graded by the harness (its ``extract_answer`` -> ``strip_string`` -> ``math_equal``
against ``parse_ground_truth`` of the source row, under a 3 s limit per check as its
``math_eval.py`` uses) and by this project's grader in both modes:
1. ``dev``: the 800 responses of ``math_labeled/qwen25math_math_cot_100.jsonl`` (their stored
   harness verdicts are checked too);
2. per math_breadth benchmark (and gsm8k, math): a reply ``... \\boxed{<form>}`` for rewritten
   forms of each gold answer: the gold itself, the gold inside ``\\text{}``, fraction/decimal,
   ``\\dfrac``, ``a/b``, thousands separators, trailing zeros, a unit, reordered sums and lists,
   expanded/factored forms (sympy), a list written with "and", ``x = <gold>``; and wrong forms
   (gold + 1, twice the gold, an inverted fraction, a dropped list item, sympy's ``expr + 1``). Each form carries the label "equal or not" it was built with.
Printed: agreement with the harness per benchmark for qwen-compat and strict, strict's agreement
with the labels, and every disagreement class with examples. Not a test.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing as mp
import random
import re
import sys
import time
import types
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BREADTH = ("aime24", "amc23", "minerva_math", "olympiadbench", "college_math", "gaokao2023en", "svamp", "asdiv",
           "cmath", "math23k")
PEER_TIMEOUT_S = 3.0
_peer = None


# ------------------------------------------------------------------------------ the peer
def load_peer(path: Path):
    """(parser, grader, note) of Qwen's harness from ``path``."""
    note = []
    l2s = path / "latex2sympy"
    if l2s.is_dir():
        sys.path.insert(0, str(l2s))
    try:
        import latex2sympy2  # noqa: F401
    except Exception as e:  # not installed or not importable: a stand-in that fails like an unparsable input
        stub = types.ModuleType("latex2sympy2")

        def latex2sympy(*_a, **_k):
            raise ValueError("latex2sympy2 stand-in")

        stub.latex2sympy = latex2sympy
        sys.modules["latex2sympy2"] = stub
        note.append(f"latex2sympy2 not importable ({type(e).__name__}): stand-in that raises")
    sys.path.insert(0, str(path))
    try:
        import utils  # noqa: F401
    except Exception:
        sys.modules["utils"] = types.ModuleType("utils")
        note.append("utils stubbed")
    mods = []
    for name in ("parser", "grader"):
        spec = importlib.util.spec_from_file_location(f"qwen_harness_{name}", path / f"{name}.py")
        if spec is None or not (path / f"{name}.py").is_file():
            raise SystemExit(f"{path}: no {name}.py (give Qwen2.5-Math's evaluation/ folder)")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        mods.append(mod)
    return mods[0], mods[1], "; ".join(note) or "complete"


def _peer_init(path: str):
    global _peer
    import warnings

    warnings.filterwarnings("ignore")
    _peer = load_peer(Path(path))


def _peer_verdict(job):
    parser, grader, _ = _peer
    reply, dataset, gt = job
    pred = parser.extract_answer(reply, dataset)
    pred = parser.strip_string(pred, skip_unit=dataset in parser.STRIP_EXCEPTIONS)
    return bool(grader.math_equal(pred, gt))


def _peer_gt(job):
    parser = _peer[0]
    source, dataset, gold = job
    if dataset == "math23k":  # not in the harness: its default post-processing
        return parser.strip_string(str(gold))
    return parser.parse_ground_truth(source, dataset)[1]


class PeerPool:
    """The harness in worker processes, one 3 s limit per check (a check over it is "not equal")."""

    def __init__(self, path: Path, workers: int):
        self.path, self.workers = str(path), workers
        self.timeouts = 0
        self._start()

    def _start(self):
        self.pool = mp.get_context("spawn").Pool(self.workers, initializer=_peer_init, initargs=(self.path,))

    def map(self, fn, jobs, timeout=PEER_TIMEOUT_S):
        pending = [self.pool.apply_async(fn, (j,)) for j in jobs]
        out = []
        for i, p in enumerate(pending):
            try:
                out.append(p.get(timeout + 30 if i == 0 else timeout))
            except mp.TimeoutError:
                self.timeouts += 1
                out.append(False)
                rest = jobs[i + 1:]
                self.pool.terminate()
                self._start()
                return out + self.map(fn, rest, timeout)
        return out

    def close(self):
        self.pool.terminate()


# -------------------------------------------------------------------------- rewritten forms
def _sympy_forms(gold: str):
    """Expanded / factored / reordered LaTeX of a gold that sympy parses; ([], []) otherwise."""
    import sympy
    from sympy.parsing.latex import parse_latex

    try:
        if "," in gold or len(gold) > 80:  # sympy's LaTeX parser stops at a comma: the form would drop items
            return [], []
        expr = parse_latex(gold)
        if not isinstance(expr, sympy.Expr) or not expr.free_symbols:
            return [], []
        same = {sympy.latex(sympy.expand(expr)), sympy.latex(sympy.factor(expr)), sympy.latex(expr)}
        wrong = [sympy.latex(expr + 1), sympy.latex(2 * expr)]
        return [("sympy-rewrite", s) for s in same if s != gold], [("sympy-wrong", w) for w in wrong]
    except Exception:  # a gold sympy cannot read has no symbolic forms
        return [], []


_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _number(gold: str):
    return float(gold.replace(",", "")) if _NUMBER.fullmatch(gold) else None


def forms(gold: str, rng: random.Random) -> list[tuple[str, str, bool]]:
    """(kind, form, equal?) for one gold answer."""
    g = gold.strip()
    out = [("identity", g, True), ("boxed-text", f"\\text{{{g}}}", True)]
    v = _number(g)
    if v is not None:
        wrong = v * 2 if v else 1.0
        if v == int(v) and abs(v) < 1e12:
            n = int(v)
            out += [("trailing-.0", f"{n}.0", True), ("frac", f"\\frac{{{2 * n}}}{{2}}", True),
                    ("unit", f"{n} \\text{{ cm}}", True), ("twice", str(int(wrong)), False),
                    ("plus-one", str(n + 1), False)]
            if abs(n) >= 1000:
                out.append(("thousands", f"{n:,}", True))
        else:
            if abs(v) < 1e12:  # a float's digits beyond that are not the gold's
                out.append(("decimal-places", f"{v:.4f}0", round(v, 4) == v))
            out.append(("twice", f"{wrong:.6g}", False))
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", g)
    if m:
        sign, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        out += [("dfrac", f"{sign}\\dfrac{{{a}}}{{{b}}}", True), ("slash", f"{sign}{a}/{b}", True),
                ("decimal", f"{sign}{a / b:.6g}", True), ("inverted", f"{sign}\\frac{{{b}}}{{{a}}}", a == b)]
    parts = [p.strip() for p in re.split(r",(?![^()\[\]{}]*[)\]}])", g) if p.strip()]
    if len(parts) > 1:
        out += [("and-list", " \\text{ and } ".join(parts), True), ("reversed-list", ", ".join(parts[::-1]), True),
                ("dropped-item", ", ".join(parts[:-1]), False)]
    terms = re.split(r"(?<=[^\s^_{(+-])\s*\+\s*(?![^{]*\})", g)
    if len(terms) == 2 and all(terms):
        out.append(("reordered-sum", f"{terms[1]}+{terms[0]}", True))
    if "=" not in g and v is None:
        out.append(("x-equals", f"x = {g}", True))
    same, wrong = _sympy_forms(g) if v is None else ([], [])  # LaTeX reads 4.4e7 as 4.4*e*7
    out += [(k, f, True) for k, f in same] + [(k, f, False) for k, f in wrong]
    return out


# ------------------------------------------------------------------------------ the run
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qwen-eval", type=Path, required=True, help="Qwen2.5-Math's evaluation/ folder")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--per-benchmark", type=int, default=80, help="gold answers per benchmark (0: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="write the rows and figures here (JSON)")
    args = ap.parse_args(argv)

    from domainspec.eval.benchmarks.registry import get_benchmark
    from domainspec.eval.grader.math_grader import MathGrader

    _, _, peer_note = load_peer(args.qwen_eval)
    print(f"peer: {args.qwen_eval} ({peer_note})")
    rng = random.Random(args.seed)
    rows = []  # (benchmark, kind, reply, gold, source, label)
    dev = [json.loads(line) for line in open(args.data / "math_labeled" / "qwen25math_math_cot_100.jsonl")]
    for r in dev:
        rows.append(("dev", "response", r["completion"], r["gold_answer"], None, None, r["passed"]))
    for name in BREADTH + ("gsm8k", "math"):
        bench = get_benchmark(name)
        path = bench.local_copy(args.data)
        tasks = bench.load(str(path))
        if args.per_benchmark and len(tasks) > args.per_benchmark:
            tasks = rng.sample(tasks, args.per_benchmark)
        for t in tasks:
            gold = bench.gold(t)
            source = t.data.get("source_row") or t.data
            for kind, form, label in forms(gold, rng):
                rows.append((name, kind, f"Let me work it out.\nSo the final result is $\\boxed{{{form}}}$.",
                             gold, source, label, None))
    print(f"{len(rows)} rows")

    peer = PeerPool(args.qwen_eval, args.workers)
    t0 = time.time()
    # the dev set's gold is the harness's parsed ground truth already
    todo = [i for i, r in enumerate(rows) if r[0] != "dev"]
    gts = [r[3] for r in rows]
    for i, gt in zip(todo, peer.map(_peer_gt, [(rows[i][4], rows[i][0], rows[i][3]) for i in todo], timeout=30)):
        gts[i] = gt
    peer_verdicts = peer.map(_peer_verdict, [(reply, b if b != "dev" else "math", gt)
                                             for (b, _, reply, *_), gt in zip(rows, gts)])
    peer_s = time.time() - t0
    peer.close()

    ours = {}
    times = {}
    for mode in ("qwen-compat", "strict"):
        t0 = time.time()
        verdicts = []
        by_bench = defaultdict(list)
        for i, (b, *_rest) in enumerate(rows):
            by_bench[b].append(i)
        out = [None] * len(rows)
        for b, idx in by_bench.items():
            grader = MathGrader.for_benchmark(get_benchmark(b if b != "dev" else "math"), mode, timeout_s=PEER_TIMEOUT_S)
            grades = grader.grade_many([(rows[i][2], rows[i][3]) for i in idx])
            for i, g in zip(idx, grades):
                out[i] = g.correct
        verdicts = out
        ours[mode], times[mode] = verdicts, time.time() - t0

    stored_ok = sum(pv == r[6] for pv, r in zip(peer_verdicts, rows) if r[0] == "dev")
    print(f"peer reproduces the dev set's stored harness verdicts on {stored_ok}/{len(dev)} rows")
    print(f"peer grading {peer_s:.0f} s (timeouts {peer.timeouts}); qwen-compat {times['qwen-compat']:.0f} s; "
          f"strict {times['strict']:.0f} s")
    print(f"\n{'benchmark':14s} {'rows':>6s} {'qwen-compat=harness':>20s} {'strict=harness':>15s} "
          f"{'strict=label':>13s} {'harness=label':>14s}")
    report = {"peer": str(args.qwen_eval), "peer_note": peer_note, "benchmarks": {}, "disagreements": {}}
    for b in ["dev", *BREADTH, "gsm8k", "math"]:
        idx = [i for i, r in enumerate(rows) if r[0] == b]
        if not idx:
            continue
        q = sum(ours["qwen-compat"][i] == peer_verdicts[i] for i in idx) / len(idx)
        s = sum(ours["strict"][i] == peer_verdicts[i] for i in idx) / len(idx)
        lab = [i for i in idx if rows[i][5] is not None]
        sl = sum(ours["strict"][i] == rows[i][5] for i in lab) / len(lab) if lab else float("nan")
        hl = sum(peer_verdicts[i] == rows[i][5] for i in lab) / len(lab) if lab else float("nan")
        report["benchmarks"][b] = {"rows": len(idx), "qwen_compat_agreement": q, "strict_agreement": s,
                                   "strict_label_agreement": sl, "harness_label_agreement": hl}
        print(f"{b:14s} {len(idx):6d} {q:20.4f} {s:15.4f} {sl:13.4f} {hl:14.4f}")
    for mode in ("qwen-compat", "strict"):
        classes = Counter()
        examples = defaultdict(list)
        for i, r in enumerate(rows):
            if ours[mode][i] != peer_verdicts[i]:
                key = (r[0] if r[0] == "dev" else r[1], "harness says equal" if peer_verdicts[i] else "harness says not")
                classes[key] += 1
                if len(examples[key]) < 3:
                    examples[key].append({"benchmark": r[0], "gold": r[3], "reply_tail": r[2][-120:], "label": r[5]})
        print(f"\n{mode}: disagreements with the harness by class")
        for key, n in classes.most_common():
            print(f"  {n:5d}  {key[0]:16s} {key[1]}   e.g. {examples[key][0]['gold']!r} <- {examples[key][0]['reply_tail'][-70:]!r}")
        report["disagreements"][mode] = [{"class": k[0], "direction": k[1], "rows": n, "examples": examples[k]}
                                         for k, n in classes.most_common()]
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
