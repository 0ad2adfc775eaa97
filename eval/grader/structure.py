"""Split a normalized answer into its mathematical shape before any sympy work.

``parse_structure(normalized)`` returns a small tree of tuples (picklable, hashable):
- ``("expr", s)``: one scalar expression (LaTeX text, converted later by ``eval/grader/latex.py``);
- ``("text", s)``: a word answer (``Evelyn``, ``no solution``) or a choice letter;
- ``("seq", open, close, items)``: a bracketed tuple or interval, ``(1,2]`` keeps its brackets;
- ``("list", items, raw)``: a bare comma/semicolon list (``1, 2``), ``raw`` its text; the words
  ``and``/``or`` between math answers separate a list too (``7 and -\\frac{29}{3}``, ``x=2 or x=3``);
- ``("set", items)``: ``\\{1,2\\}`` and the expansion of ``a \\pm b``;
- ``("union", items)``: intervals joined by ``\\cup``;
- ``("matrix", rows)``;
- ``("rel", sides, ops)``: an equation, inequality or chain (``-2 \\leq x \\leq 7``);
- ``("labeled", lhs, value, rel)``: ``x = 3``, ``(p,q) = (3,2)``, ``f(x) = 1``: a name given to a
  value; compared by its value against a value, by its relation against a relation.
``x \\in S`` becomes S. It does not evaluate anything, so it is cheap and safe on the main thread.
"""
from __future__ import annotations

import re

_OPEN = {"(": ")", "[": "]", "{": "}"}
_REL_OPS = ["\\leq", "\\geq", "\\neq", "\\approx", "=", "<", ">"]
_LABEL = re.compile(
    r"[a-zA-Z](?:_\{?[\w]+\}?)?'?|\\[a-zA-Z]+(?:_\{?\w+\}?)?"             # x, x_1, \theta
    r"|[a-zA-Z]\w*\([a-zA-Z,\s]*\)"                                      # f(x)
    r"|\((?:\s*[a-zA-Z](?:_\{?\w+\}?)?\s*,)+\s*[a-zA-Z](?:_\{?\w+\}?)?\s*\)"  # (p, q)
    r"|[a-zA-Z_{}\\]+(?::[a-zA-Z_{}\\]+)+")                              # S_{ABC}:S
_WORDS = re.compile(r"[A-Za-z][A-Za-z ]*[A-Za-z]")
_CONJUNCTION = re.compile(r"\s*,?\s*(?<![\\A-Za-z])(?:and|or)(?![A-Za-z])\s*")


def _scan(s: str):
    """Yield (index, depth, char-or-command) over s; ``\\{``/``\\}`` count as brackets."""
    depth = 0
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            m = re.match(r"\\[a-zA-Z]+|\\.", s[i:])
            tok = m.group(0) if m else c
            if tok == "\\{":
                depth += 1
            elif tok == "\\}":
                depth -= 1
            yield i, depth, tok
            i += len(tok)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        yield i, depth, c
        i += 1


def split_top(s: str, seps: tuple[str, ...]) -> list[str]:
    parts, last = [], 0
    for i, depth, tok in _scan(s):
        if depth == 0 and tok in seps:
            parts.append(s[last:i])
            last = i + len(tok)
    parts.append(s[last:])
    return [p.strip() for p in parts]


def _relation_split(s: str) -> tuple[list[str], list[str]]:
    sides, ops, last = [], [], 0
    for i, depth, tok in _scan(s):
        if depth == 0 and tok in _REL_OPS:
            sides.append(s[last:i].strip())
            ops.append(tok)
            last = i + len(tok)
    sides.append(s[last:].strip())
    return sides, ops


def _wrapped(s: str) -> bool:
    """True when the first bracket of s closes at its very end: ``(1,2]`` yes, ``(a)(b)`` no."""
    if not s or s[0] not in "([" or s[-1] not in ")]":
        return False
    for i, depth, _ in _scan(s):
        if depth == 0 and i < len(s) - 1:
            return False
    return True


def _matrix(s: str):
    m = re.fullmatch(r"\\begin\{([pbvB]?matrix|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}", s, re.S)
    if not m:
        return None
    rows = [r for r in re.split(r"\\\\", m.group(2)) if r.strip()]
    return ("matrix", tuple(tuple(parse_structure(c) for c in row.split("&")) for row in rows))


def _expand_pm(s: str):
    for i, depth, tok in _scan(s):
        if depth == 0 and tok in ("\\pm", "\\mp"):
            head, tail = s[:i], s[i + len(tok):]
            return [head + "+" + tail, head + "-" + tail]
    return None


def parse_structure(s: str):
    s = s.strip()
    if not s:
        return ("text", "")
    matrix = _matrix(s)
    if matrix:
        return matrix
    in_parts = split_top(s, ("\\in",))
    if len(in_parts) == 2 and in_parts[1]:
        return parse_structure(in_parts[1])
    s = _conjunctions_as_commas(s)
    for seps in ((";",), (",",)):
        parts = split_top(s, seps)
        if len(parts) > 1 and all(parts):
            return ("list", tuple(parse_structure(p) for p in parts), s)
    union = split_top(s, ("\\cup",))
    if len(union) > 1:
        return ("union", tuple(parse_structure(p) for p in union))
    sides, ops = _relation_split(s)
    if ops and all(sides):
        if ops == ["="] and _LABEL.fullmatch(sides[0].replace(" ", "")):
            return ("labeled", sides[0], parse_structure(sides[1]), ("rel", tuple(sides), tuple(ops)))
        return ("rel", tuple(sides), tuple(ops))
    pm = _expand_pm(s)
    if pm:
        return ("set", tuple(parse_structure(p) for p in pm))
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = _conjunctions_as_commas(s[2:-2].strip())
        items = [p for p in split_top(inner, (";",) if ";" in inner else (",",)) if p]
        return ("set", tuple(parse_structure(p) for p in items))
    if s.startswith("{") and s.endswith("}") and _OPEN_closes_at_end(s):
        return parse_structure(s[1:-1])
    if _wrapped(s):
        parts = split_top(s[1:-1], (",",))
        if len(parts) > 1:
            return ("seq", s[0], s[-1], tuple(parse_structure(p) for p in parts))
    if _WORDS.fullmatch(s) and len(s) > 1 and not re.fullmatch(r"[a-zA-Z]{1,3}", s):
        return ("text", s)
    return ("expr", s)


def _conjunctions_as_commas(s: str) -> str:
    """``7 and -3`` -> ``7, -3`` (top level only); a word answer such as ``Alice and Bob`` stays."""
    depth_at = {i: depth for i, depth, _ in _scan(s)}
    out, last = [], 0
    for m in _CONJUNCTION.finditer(s):
        if depth_at.get(m.start()) == 0:
            out += [s[last:m.start()], ", "]
            last = m.end()
    if not out:
        return s
    joined = "".join(out) + s[last:]
    parts = split_top(joined, (",",))
    if not all(parts) or all(_WORDS.fullmatch(p) for p in parts):
        return s
    return joined


def _OPEN_closes_at_end(s: str) -> bool:
    for i, depth, _ in _scan(s):
        if depth == 0 and i < len(s) - 1:
            return False
    return True
