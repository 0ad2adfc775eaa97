"""`qwen-compat` grading mode: the conventions of Qwen2.5-Math's evaluation scripts, re-implemented
from their documented behaviour so scores can be set beside Qwen's published tables.

Use it through ``domainspec.eval.grader.math_grader`` (``mode="qwen-compat"``); this module holds
``qwen_extract`` (answer extraction), ``qwen_strip_string`` (normalization), ``qwen_math_equal``
(equivalence) and ``qwen_majority`` (maj@k). It is not the strict grader and is not sound.

Known leniencies, reproduced on purpose (each is tested in tests/test_math_grader.py):
1. Unit-word deletion: ``qwen_strip_string`` deletes "unit" words (~130 in Qwen's list, 159 here) wherever they stand
   between non-word characters, including single letters (``a``, ``t``, ``h``...), ``sec`` and
   ``pm``: ``(a+5)(b+2)`` becomes ``(+5)(b+2)``, ``\\sec^2(y)`` and ``\\pm 2021`` are mangled.
   Our list is written from the published behaviour, not copied: the known deletions above are
   the same, rarer words differ (ours has extra nouns such as ``apples``, ``tickets``).
2. Percent leniency: when both answers are numbers, a gold g accepts g/100, g and g*100
   (``0.25`` and ``2500`` both equal ``25``); a trailing ``%`` is dropped.
3. Relative tolerance 1e-4 for every numeric comparison, also after symbolic evaluation.
4. An equation whose left side has at most 2 characters is reduced to its right side on either
   side (``x=3`` equals ``3``; ``xy=3`` too), and ``x=``, ``y\\in`` prefixes are deleted.
5. Bracket leniency: ``[1,2]`` equals ``(1,2)`` (outer brackets of a different kind are dropped).
6. Extraction: the last ``\\boxed{}``; else text after "he answer is"; else after "final answer
   is"; else the last number of the reply (commas removed) -- a reply with no answer usually
   yields some number.
7. ``0.5`` is rewritten ``\\frac{1}{2}``, ``a/b`` with integers ``\\frac{a}{b}``, ``\\text{...}``
   unwrapped, ``\\!`` and spaces removed (``32, 349`` becomes ``32,349``, one number).
8. Scoring: accuracy is taken from the first sample of each problem; maj@k votes by exact string
   of the normalized answers.
Symbolic parsing uses our ``eval/grader/latex.py`` instead of Qwen's latex2sympy fork: expressions
that fork parses and ours does not (or the reverse) can be graded differently.
"""
from __future__ import annotations

import math
import re
from collections import Counter

# (leniency 1) deleted wherever they appear between non-word characters
UNIT_WORDS = """
east west north south move way degree degrees deg mph kmph kmh ft feet foot square sq m east
mile miles km cm mm meter meters metre metres inch inches yard yards unit units hour hours hr hrs
minute minutes min mins second seconds sec day days week weeks month months year years
dollar dollars cent cents rs rupee rupees euro euros pound pounds lb lbs kg gm g gram grams ton
tons litre litres liter liters ml gallon gallons ounce ounces oz quart quarts pint pints
percent per prime ratio profit gain loss excess men women people person student students child
children boy boys girl girls soldier soldiers worker workers monkey monkeys apple apples pie pies
tile tiles book books page pages ticket tickets car cars box boxes bag bags egg eggs bottle bottles
marble marbles cookie cookies candy candies point points times time mark marks unit
a t h o p pm am st nd rd th ab bc
""".split()
UNIT_WORDS = sorted(set(UNIT_WORDS), key=lambda w: (-len(w), w))
# one alternation with lookarounds instead of ~130 sequential passes: the same words are deleted
# (a word bounded by non-word characters), ~100x fewer regex scans
_UNIT_RE = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in UNIT_WORDS) + r")(?!\w)")
REL_TOL = 1e-4


def _last_boxed_qwen(text: str) -> str:
    tail = text.split("boxed")[-1]
    if not tail:
        return ""
    if tail[0] == "{":
        depth = 0
        for i, c in enumerate(tail):
            depth += c == "{"
            depth -= c == "}"
            if depth == 0:
                return tail[1:i]
        return tail[1:]
    return tail.split("$")[0].strip()


def qwen_extract(text: str | None) -> str:
    """Qwen's extraction order (leniency 6) and its light clean-up (newlines, leading ``:``,
    trailing ``.``/``/``). ``qwen_strip_string`` is applied once, by the comparison, to both sides
    as Qwen does (applying it twice is not idempotent: ``x \\in [a,b]`` loses its prefix)."""
    if not text:
        return ""
    if "final answer is $" in text and "$. I hope" in text:
        pred = text.split("final answer is $", 1)[1].split("$. I hope", 1)[0].strip()
    elif "boxed" in text:
        pred = _last_boxed_qwen(text)
    elif "he answer is" in text:
        pred = text.split("he answer is")[-1].strip()
    elif "final answer is" in text:
        pred = text.split("final answer is")[-1].strip()
    else:
        nums = re.findall(r"-?\d*\.?\d+", text.replace(",", ""))
        pred = nums[-1] if nums else ""
    return re.sub(r"\n\s*", "", pred).strip().lstrip(":").rstrip(".").rstrip("/")


def _fix_fracs(s: str) -> str:
    # \frac12 -> \frac{1}{2}, \frac1{2} -> \frac{1}{2}
    return re.sub(r"\\frac\s*(\d)\s*(\d|\{[^{}]*\})", lambda m: "\\frac{%s}%s" % (
        m.group(1), m.group(2) if m.group(2).startswith("{") else "{" + m.group(2) + "}"), s)


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt\s*(\w)", r"\\sqrt{\1}", s)


def qwen_strip_string(s: str) -> str:
    s = str(s).strip().replace("\n", "").rstrip(".").replace("\\!", "")
    s = re.sub(r"\\begin\{array\}\{.*?\}", r"\\begin{pmatrix}", s).replace("\\end{array}", "\\end{pmatrix}")
    s = s.replace("bmatrix", "pmatrix").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\neq", "\\ne").replace("\\leq", "\\le").replace("\\geq", "\\ge")
    s = s.replace("\\left", "").replace("\\right", "").replace("\\{", "{").replace("\\}", "}")
    no_unit = re.sub(r"\\text\{.*?\}$", "", s).strip()
    if no_unit and no_unit != s:
        s = no_unit
    s = _UNIT_RE.sub("", s)  # leniency 1
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    s = s.replace("\\(", "").replace("\\)", "")
    s = re.sub(r"\\(?:text|mbox|textbf|mathrm)\{(.*?)\}", r"\1", s)
    for prefix in ("x=", "y=", "z=", "x\\in", "y\\in", "z\\in", "x\\to", "y\\to", "z\\to"):
        s = s.replace(prefix, "")
    s = s.replace("\\emptyset", "{}").replace("(-\\infty,\\infty)", "\\mathbb{R}")
    s = s.replace("\\%", "").replace("%", "")  # leniency 2 (the sign goes; the value stays)
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    s = re.sub(r"(\d+)\.0*(?=[^\d]|$)", r"\1", s)  # trailing .0
    if s.count("=") == 1 and len(s.split("=")[0].strip()) <= 2:  # leniency 4
        s = s.split("=")[1]
    s = _fix_sqrt(s).replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":  # leniency 7
        s = "\\frac{1}{2}"
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    if m:
        s = "\\frac{%s}{%s}" % m.groups()
    return s


def _number(s: str) -> float | None:
    s = re.sub(",", "", str(s)).strip()
    percent = s.endswith("%")
    s = s.rstrip("%").rstrip("\\")
    try:
        value = float(s)
    except ValueError:
        return None
    return value / 100 if percent else value


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL)


def qwen_numeric_equal(pred: str, ref: str) -> bool | None:
    """Leniencies 2 and 3 for two plain numbers; None when either is not a plain number."""
    p, r = _number(pred), _number(ref)
    if p is None or r is None:
        return None
    return any(_close(p, g) for g in (r / 100, r, r * 100))


def qwen_cheap_equal(pred: str, ref: str) -> bool | None:
    if pred is None or ref is None:
        return False
    if str(pred).strip().lower() == str(ref).strip().lower():
        return True
    if ref in ("A", "B", "C", "D", "E") and re.sub(r"[^A-E]", "", pred)[-1:] == ref:
        return True
    return qwen_numeric_equal(pred, ref)


def _symbolic_equal(a: str, b: str) -> bool:
    from domainspec.eval.grader.latex import LatexParseError, latex_to_sympy

    def parse(s):
        try:
            return latex_to_sympy(s)
        except (LatexParseError, RecursionError):
            return None

    x, y = parse(a), parse(b)
    if x is None or y is None:
        return False
    import sympy

    try:
        if x == y or sympy.simplify(x - y) == 0:
            return True
    except Exception:  # sympy raises many types on odd input; Qwen also swallows them
        pass
    try:
        return _close(float(sympy.N(x)), float(sympy.N(y)))  # leniency 3
    except (TypeError, ValueError, OverflowError):
        return False


def qwen_math_equal(pred: str, ref: str) -> bool:
    cheap = qwen_cheap_equal(pred, ref)
    if cheap is not None:
        return cheap
    if not pred:
        return False
    p, r = str(pred).strip(), str(ref).strip()
    # leniency 5: outer brackets of a different kind are ignored
    if (p[:1] == "[" and p[-1:] == "]" and r[:1] != "(") or (p[:1] == "(" and p[-1:] == ")" and r[:1] != "["):
        ps, rs = p.strip("[]()"), r.strip("[]()")
        for ch in "{}()":
            ps, rs = ps.replace(ch, ""), rs.replace(ch, "")
        if ps.lower() == rs.lower():
            return True
    bracketed = re.compile(r"(\(|\[).+(\)|\])")
    if bracketed.fullmatch(p) and bracketed.fullmatch(r):
        pp, rp = p[1:-1].split(","), r[1:-1].split(",")
        if len(pp) == len(rp) and all(qwen_math_equal(a, b) for a, b in zip(pp, rp)):
            return True
    if "\\begin{pmatrix}" in p and "\\begin{pmatrix}" in r:
        prow = [row.split("&") for row in p.split("\\begin{pmatrix}")[1].split("\\end{pmatrix}")[0].split("\\\\")]
        rrow = [row.split("&") for row in r.split("\\begin{pmatrix}")[1].split("\\end{pmatrix}")[0].split("\\\\")]
        if len(prow) == len(rrow) and all(len(a) == len(b) and all(qwen_math_equal(x, y) for x, y in zip(a, b))
                                          for a, b in zip(prow, rrow)):
            return True
    if p.count("=") == 1 and r.count("=") == 1:
        pl, pr = p.split("=")
        rl, rr = r.split("=")
        pe, re_ = f"{pl}-({pr})", f"{rl}-({rr})"
        if _symbolic_equal(pe, re_) or _symbolic_equal(f"-({pe})", re_):
            return True
    elif p.count("=") == 1 and len(p.split("=")[0].strip()) <= 2 and "=" not in r:
        if qwen_math_equal(p.split("=")[1], r):
            return True
    elif r.count("=") == 1 and len(r.split("=")[0].strip()) <= 2 and "=" not in p:
        if qwen_math_equal(p, r.split("=")[1]):
            return True
    return _symbolic_equal(p, r)


def qwen_majority(answers) -> str | None:
    """maj@k by exact string of the normalized answers; ties go to the earliest (leniency 8)."""
    votes = Counter(a for a in answers if a not in (None, ""))
    if not votes:
        return None
    best = max(votes.values())
    return next(a for a in answers if a not in (None, "") and votes[a] == best)
