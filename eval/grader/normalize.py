"""Strict normalization of an extracted answer: rewrites notation, never deletes mathematical content.

``normalize(answer)`` returns a canonical LaTeX string: outer ``$``/``\\(\\)`` delimiters, ``\\left``/
``\\right``, spacing commands and ``\\displaystyle`` are dropped; ``\\dfrac``/``\\tfrac`` become
``\\frac``; thousands separators (``7,425,000``, ``32,\\! 349``, ``1{,}000``, ``1 000``) are joined
while a comma followed by a space (``32, 349``) stays a list separator; ``\\$``, degrees and percent
signs are dropped; units are dropped only as a *trailing annotation* after a number, a closing
bracket or a LaTeX group (``10\\text{ units}``, ``125 miles``, ``5 \\text{cm}^2``, ``18 km/h``, and
1-4 Chinese characters: ``880米``, ``12.5 元``; not the letters of ``3/4``, ``x/2``, ``2 a/b``, nor an
answer of Chinese words only), and a remaining ``\\text{X}`` is unwrapped to ``X``. Letters are
never deleted, so ``(+5)(b+2)`` stays different from ``(a+5)(b+2)`` and ``\\sec^2 y`` stays intact.
Conventions (documented, not mathematical facts): ``10\\%`` normalizes to ``10`` (a percent answer
compared as the number of percent, as MATH's answer key does), ``30^\\circ`` to ``30``.
``compact(s)`` is the whitespace-free form used for exact string comparison.
"""
from __future__ import annotations

import re
from decimal import Decimal

_UNICODE = {
    "−": "-", "–": "-", "×": "\\times ", "÷": "\\div ", "·": "\\cdot ", "π": "\\pi ", "∞": "\\infty ",
    "≤": "\\leq ", "≥": "\\geq ", "≠": "\\neq ", "√": "\\sqrt ", "°": "^\\circ", "∪": "\\cup ",
    "∈": "\\in ", "±": "\\pm ", "\u00a0": " ", "\u2009": " ", "\u202f": " ",
}
_RELATION_ALIASES = [
    (r"\\leqslant\b|\\le\b(?!ft)", r"\\leq"), (r"\\geqslant\b|\\ge\b", r"\\geq"), (r"\\ne\b", r"\\neq"),
    (r"\\lt\b", "<"), (r"\\gt\b", ">"), (r"<=", r"\\leq "), (r">=", r"\\geq "), (r"!=", r"\\neq "),
]
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad\b|~|\\displaystyle\b|\\limits\b|\\mathnormal\b")
_TEXT_CMD = r"\\(?:text|textnormal|textrm|mbox|mathrm|textit|textbf|mathbf|mathit|operatorname)"
# a trailing unit annotation, after math content: \text{...} or plain words (optionally ^2/^3), or a
# run of Chinese characters (米, 千克, 平方米). A unit joined by "/" (km/h, m/s^2, 米/秒) has parts of
# 2+ letters or one of the single-letter units below, so 2 a/b keeps its letters.
_POWER = r"(?:\s*\^\s*\{?[23]\}?)?"
_UNIT_PART = r"(?:[a-zA-Z]{2,}|[msghlL])"
_TRAILING_TEXT = re.compile(_TEXT_CMD + r"\s*\{([^{}]*)\}" + _POWER + r"\s*$")
_TRAILING_WORDS = re.compile(rf"(?<=[\d)\]}}a-zA-Z.])\s+({_UNIT_PART}(?:/{_UNIT_PART})+|[a-zA-Z]{{2,}}"
                             rf"(?:\s+[a-zA-Z]{{2,}}){{0,2}}){_POWER}\s*$")
_TRAILING_CJK = re.compile(r"(?<=[\d)\]}])\s*[\u4e00-\u9fff]{1,4}(?:/[\u4e00-\u9fff]{1,4})*\s*$")
_KEEP_WORDS = {"and", "or", "pi", "in", "sin", "cos", "tan", "log", "ln", "sec", "csc", "cot"}
# e-notation as physics answers write it (``9.35e5``, ``4.46e19``, ``1.2E-3``); LaTeX would read an ``e`` there
_E_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)[eE][-+]?\d{1,3}")
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?$")


def _strip_delimiters(s: str) -> str:
    s = s.strip()
    changed = True
    while changed and s:
        changed = False
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left):len(s) - len(right)].strip()
                changed = True
        s2 = s.rstrip(".").strip()
        if s2 != s:
            s, changed = s2, True
    return s


def _strip_trailing_units(s: str) -> str:
    while True:
        m = _TRAILING_TEXT.search(s)
        if m and s[:m.start()].strip():
            body = m.group(1).strip()
            # keep math that was written inside \text (a lone letter or number is content, not a unit)
            if re.fullmatch(r"[a-zA-Z]|[\d.,]+|\(?[A-Ea-e]\)?", body) and not s[:m.start()].strip().endswith("}"):
                return s
            s = s[:m.start()].rstrip()
            continue
        m = _TRAILING_CJK.search(s)
        if m:
            s = s[:m.start()].rstrip()
            continue
        m = _TRAILING_WORDS.search(s)
        if m and s[:m.start()].strip() and not (set(re.split(r"[\s/]+", m.group(1).lower())) & _KEEP_WORDS):
            head = s[:m.start()].rstrip()
            # "x y" or "a b" could be a product of letters; words of 2+ letters after math are units
            if re.search(r"[\d)}\]]$", head) or re.search(r"\\[a-zA-Z]+\{[^{}]*\}$", head):
                s = head
                continue
        return s


def _join_thousands(s: str) -> str:
    s = s.replace("{,}", ",")
    s = re.sub(r"(\d),\s*\\!\s*(?=\d{3}(?!\d))", r"\1,", s)
    # 7,425,000 -> 7425000 ; a comma followed by exactly three digits and no space is a separator
    s = re.sub(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])(?:\.\d+)?",
               lambda m: m.group(0).replace(",", ""), s)
    # "1 000 000" (space-separated groups) only when the whole answer is that number
    if re.fullmatch(r"-?\d{1,3}(?: \d{3})+(?:\.\d+)?", s):
        s = s.replace(" ", "")
    return s


def normalize(answer: str) -> str:
    s = answer.strip()
    for k, v in _UNICODE.items():
        s = s.replace(k, v)
    s = _strip_delimiters(s)
    s = s.replace("\\$", "").replace("\\left.", "").replace("\\right.", "")
    s = re.sub(r"\\left\b|\\right\b|\\bigl?\b|\\bigr\b|\\Bigl?\b|\\Bigr\b", "", s)
    if s.count("$") == 1 or s.startswith("$"):  # a currency sign, not a math delimiter
        s = s.replace("$", "")
    s = re.sub(r"\\[dtc]frac\b", r"\\frac", s)
    s = re.sub(r"\\[dt]binom\b", r"\\binom", s)
    s = _join_thousands(s)
    s = _SPACING.sub(" ", s)
    for pattern, repl in _RELATION_ALIASES:
        s = re.sub(pattern, repl, s)
    # degrees and percent are annotations of the number they follow
    s = re.sub(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ\b|\\circ\b|\\degree\b", "", s)
    s = re.sub(r"\\%|%", "", s)
    s = re.sub(r"\s+(?:percent|per\s*cent)\s*$", "", s, flags=re.I)
    s = _strip_trailing_units(s.strip())
    s = re.sub(_TEXT_CMD + r"\s*\{([^{}]*)\}", lambda m: m.group(1), s)
    s = re.sub(r"\\emptyset\b|\\varnothing\b", r"\\{\\}", s)
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    s = _strip_delimiters(s)
    if _E_NUMBER.fullmatch(s):  # "9.35e5" (Minerva's physics golds): the decimal it stands for, "935000"
        s = format(Decimal(s), "f")
    m = _CHOICE.match(s)
    if m:
        s = m.group(1)
    return s


def compact(s: str) -> str:
    """Whitespace-free form for string comparison (spaces inside LaTeX carry no meaning once
    thousands separators and lists were resolved by ``normalize``)."""
    return re.sub(r"\s+", "", s)


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def plain_number(s: str):
    """The exact value (a Fraction) of a plain decimal literal such as ``-12``, ``0.25``, ``.5``;
    None for anything else. Cheap and safe: no expression is evaluated."""
    from fractions import Fraction

    s = compact(s)
    if len(s) > 400 or not _PLAIN_NUMBER.fullmatch(s):
        return None
    return Fraction(s)


def decimal_places(s: str) -> int | None:
    """Number of digits after the point of a plain decimal literal (None if not a decimal)."""
    s = compact(s)
    if _PLAIN_NUMBER.fullmatch(s) and "." in s:
        return len(s.split(".", 1)[1])
    return None
