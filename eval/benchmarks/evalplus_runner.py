"""The EvalPlus test runner that executes INSIDE the sandbox: its source text is the head of every program.

Not imported by the host for running anything: :mod:`domainspec.eval.benchmarks.evalplus_programs`
reads this file's text and appends one call, ``reference_outputs(...)`` (the canonical solution on
every input: outputs and per-input runtimes, printed as one line) or ``untrusted_check(...)`` (a
model's code on every input, each output compared with the reference's). Standard library only, no
``domainspec`` imports (a sandbox child has neither the package nor numpy preloaded).

Comparison (the rules EvalPlus's ``unsafe_execute`` applies, re-implemented here): ``out == exp``;
where that fails and the task has an ``atol`` (or the expected value is a float or a non-empty
list/tuple of floats, which gets 1e-6), the same type, the same length and every number within
``atol + 1e-7 * |exp|``. Named special oracles replace equality for a few tasks whose outputs are not
unique (``ORACLES`` in :mod:`domainspec.eval.benchmarks.evalplus`). Expected outputs are kept as values
when their pickle is small (under ``LARGE`` bytes, so a program stays small); a larger str that is
compared exactly is kept as its sha256, and any other large output is recomputed inside the
candidate's program by running the reference on that input first (EvalPlus keeps every output in
memory; a few HumanEval+/MBPP+ outputs are hundreds of MB).

What it does not protect against: anything; it runs the model's code in-process like EvalPlus
does, and the sandbox around it is the protection. A program can forge its own verdict.
"""
import base64
import hashlib
import math
import os
import pickle
import signal
import sys
import time
import zlib

RUNNER_VERSION = "evalplus-runner-1"
LARGE = 512  # bytes (pickled, at least) above which an expected output is not kept as a value
PHASE_BUDGET = 16384  # characters of packed expected outputs per phase (the reference's line < 64 KiB)
ORACLE_TAG = "EVALPLUS-REFERENCE "
PHASE_TAG = "EVALPLUS-PHASE-PASSED "
TIMEOUT_TAG = "EVALPLUS-INPUT-TIMEOUT"
SYNTAX_TAG = "EVALPLUS-SYNTAX-ERROR"


def pack(obj):
    return base64.b85encode(zlib.compress(pickle.dumps(obj, protocol=4), 6)).decode("ascii")


def unpack(text):
    return pickle.loads(zlib.decompress(base64.b85decode(text)))


def _within(x, budget):
    """``budget`` less a lower bound of ``x``'s pickled size, or -1 once over it (stops early on huge values)."""
    if isinstance(x, (str, bytes, bytearray)):
        return budget - len(x) - 5
    if isinstance(x, (list, tuple, set, frozenset, dict)):
        if len(x) > budget:
            return -1
        budget -= 2
        for item in (x.items() if isinstance(x, dict) else x):
            budget = _within(item, budget)
            if budget < 0:
                return -1
        return budget
    if isinstance(x, int):
        return budget - x.bit_length() // 8 - 5
    return budget - 9


def text_digest(x):
    return hashlib.sha256(x.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_floats(x):
    if isinstance(x, float):
        return True
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(i, float) for i in x)


def _large_entry(value, oracle):
    if type(value) is str and oracle is None:
        return ("s", text_digest(value))
    return ("r",)


def expected_entry(value, oracle):
    """How the reference's output is kept, and its pickled size: ("v", value) when small, ("s", sha256)
    for a large str compared exactly, ("r",) otherwise (the candidate's program recomputes it)."""
    if _within(value, LARGE) >= 0:
        try:
            size = len(pickle.dumps(value, protocol=4))
        except Exception:  # not picklable: recomputed where it is needed
            return ("r",), 0
        if size <= LARGE:
            return ("v", value), size
    return _large_entry(value, oracle), 0


def fit(entries, sizes, oracle, budget=PHASE_BUDGET):
    """``entries`` packed within ``budget`` characters: the largest kept values become digests or
    recomputed entries until they fit (the reference's line must fit the sandbox's stdout tail), then,
    if that is not enough, digests become recomputed entries."""
    packed = pack(entries)
    for kind, demote in (("v", lambda e: _large_entry(e[1], oracle)), ("s", lambda e: ("r",))):
        order = sorted((i for i, e in enumerate(entries) if e[0] == kind), key=lambda i: -sizes[i])
        while len(packed) > budget and order:
            step = max(1, len(order) // 8)
            for i in order[:step]:
                entries[i] = demote(entries[i])
            order = order[step:]
            packed = pack(entries)
    return packed


# ------------------------------------------------------------------- the special oracles (by name)
def _poly(xs, x):
    return sum(c * math.pow(x, i) for i, c in enumerate(xs))


def _pyramid_surface(base_edge, height):
    slant = math.sqrt((base_edge / 2) ** 2 + height ** 2)
    return round(base_edge ** 2 + 2 * base_edge * slant)


def _digit_distance(a, b):
    sa, sb = str(a), str(b)
    width = max(len(sa), len(sb))
    return sum(abs(int(p) - int(q)) for p, q in zip(sa.zfill(width), sb.zfill(width)))


def _close(out, exp, atol):
    """``out`` within ``atol + 1e-7 |exp|`` of ``exp``, number by number (np.allclose's rule, shapes equal)."""
    if isinstance(exp, (list, tuple)):
        return (isinstance(out, (list, tuple)) and len(out) == len(exp)
                and all(_close(o, e, atol) for o, e in zip(out, exp)))
    if isinstance(out, (list, tuple)) or isinstance(out, str) or isinstance(exp, str):
        return False
    try:
        diff = abs(out - exp)
        return bool(diff <= atol + 1e-7 * abs(exp))
    except Exception:
        return False


def matches(out, entry, inp, atol, oracle):
    """Whether the candidate's ``out`` for input ``inp`` is right (EvalPlus's rules, see the module docstring);
    ``entry``: ("v", expected value) or ("s", sha256 of the expected str)."""
    if oracle == "polynomial_root":
        return abs(_poly(*inp, out)) <= atol
    if entry[0] == "s":  # a large expected str: equal to ``out`` exactly when the texts are
        return isinstance(out, str) and text_digest(out) == entry[1]
    exp = entry[1]
    exact = out == exp
    if oracle == "always":
        exact = True
    elif oracle == "zero_or_equal":
        exact = exact or out == 0
    elif oracle == "pyramid_surface":
        exact = exact or abs(out - _pyramid_surface(*inp)) <= atol
    elif oracle == "digit_distance":
        exact = exact or out == _digit_distance(*inp)
    elif oracle == "set_equal":
        exact = set(out) == set(exp)
    elif oracle == "not_none":
        exact = out == exp if isinstance(out, bool) else exp == (out is not None)
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact and atol != 0:
        return type(out) is type(exp) and _close(out, exp, atol)
    return bool(exact)


# ------------------------------------------------------------------- running code
class _Sink:
    def write(self, s):
        return len(s)

    def flush(self):
        pass


def _quiet():
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = _Sink()
    return saved


def _load(code, entry_point):
    """Exec ``code`` in a namespace of its own, output swallowed; its ``entry_point``."""
    try:
        compiled = compile(code, "<solution>", "exec")
    except (SyntaxError, ValueError) as e:
        os.write(2, ("%s: %s: %s\n" % (SYNTAX_TAG, type(e).__name__, e)).encode("utf-8", "replace"))
        os._exit(2)
    namespace = {"__name__": "__solution__"}
    saved = _quiet()
    try:
        exec(compiled, namespace)
    finally:
        sys.stdout, sys.stderr = saved
    if entry_point not in namespace:
        raise NameError("the solution does not define %r" % entry_point)
    return namespace[entry_point]


class InputTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise InputTimeout()


def _expected(fn, inp, oracle):
    """The reference's output on (a copy of) ``inp``, output swallowed; EvalPlus's not-None rule applied."""
    import copy

    saved = _quiet()
    try:
        out = fn(*copy.deepcopy(inp))
    finally:
        sys.stdout, sys.stderr = saved
    return (out is not None) if oracle == "not_none" else out


def reference_outputs(code, entry_point, phases, oracle):
    """Run the (trusted) reference on every input of every phase; print one JSON line:
    ``{phase: {"entries": packed expected entries, "times": seconds per input, "recompute": indices}}``
    (``recompute``: the inputs whose output is too large to keep, see :func:`expected_entry`).
    ``phases``: phase name -> packed input list."""
    import json

    fn = _load(code, entry_point)
    result = {}
    for name, packed in phases.items():
        entries, sizes, times = [], [], []
        for inp in unpack(packed):
            t0 = time.perf_counter()
            out = _expected(fn, inp, oracle)
            times.append(time.perf_counter() - t0)
            entry, size = expected_entry(out, oracle)
            entries.append(entry)
            sizes.append(size)
            del out
        packed_entries = fit(entries, sizes, oracle)
        result[name] = {"entries": packed_entries, "times": [round(t, 6) for t in times],
                        "recompute": [i for i, e in enumerate(entries) if e[0] == "r"]}
    os.write(1, (ORACLE_TAG + json.dumps(result) + "\n").encode("ascii"))


def untrusted_check(code, entry_point, phases, atol, oracle, reference):
    """Run a model's ``code`` on each phase's inputs in order, stopping at the first wrong output.

    ``phases``: [(name, packed inputs, packed expected entries, per-input limits in seconds or None)];
    ``reference``: the reference's code, run (before the candidate's code is loaded) on the inputs whose
    expected output was too large to keep. After each phase passes, a ``PHASE_TAG`` line goes to fd 1;
    a wrong output raises AssertionError naming the phase and input; an input over its limit raises
    InputTimeout (its tag on stderr). Only the candidate's call is under the per-input limit.
    """
    phases = [(name, unpack(inputs), unpack(entries), limits) for name, inputs, entries, limits in phases]
    ref_fn = None
    if any(e[0] == "r" for _, _, entries, _ in phases for e in entries):
        ref_fn = _load(reference, entry_point)
    fn = _load(code, entry_point)
    signal.signal(signal.SIGALRM, _alarm)
    for name, inputs, entries, limits in phases:
        for i, inp in enumerate(inputs):
            entry = entries[i]
            if entry[0] == "r":
                entry = ("v", _expected(ref_fn, inp, oracle))
            saved = _quiet()
            try:
                if limits is not None:
                    signal.setitimer(signal.ITIMER_REAL, limits[i])
                out = fn(*inp)
            except InputTimeout:
                raise InputTimeout("%s: %s input %d ran over its limit of %gs" % (TIMEOUT_TAG, name, i, limits[i]))
            finally:
                if limits is not None:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                sys.stdout, sys.stderr = saved
            if not matches(out, entry, inp, atol, oracle):
                raise AssertionError("%s input %d: wrong output" % (name, i))
            del out, entry
        os.write(1, (PHASE_TAG + name + "\n").encode("ascii"))
