"""A small LaTeX -> sympy converter for the subset that final math answers use.

Usage: ``latex_to_sympy(r"\\frac{\\sqrt{3}}{2} + x^2")`` returns a sympy expression or raises
``LatexParseError`` naming the position that could not be read.

Why not ``sympy.parsing.latex.parse_latex``: its ANTLR backend needs exactly
antlr4-python3-runtime 4.11 (this environment has 4.13, which it rejects) and the lark backend
needs an extra dependency; both are several times slower than this recursive-descent reader and
neither keeps decimal literals exact. This module covers numbers (decimals become exact
Rationals), letters and subscripted symbols, Greek letters, ``\\frac``/``\\sqrt``/``\\binom``, powers,
implicit multiplication, factorial, absolute value, floor/ceil, trig/log/exp functions,
``\\pi``, ``\\infty``, ``i`` (imaginary unit) and ``e`` (Euler's number), and mixed numbers
(``137 \\frac{1}{2}`` is 137.5). It does not handle relations, lists, sets, intervals or
matrices: ``eval/grader/structure.py`` splits those first and calls this per element.
It evaluates eagerly (sympy's default), so a power tower can take unbounded time: callers run it
under the process-level time limit of ``eval/grader/pool.py``.
"""
from __future__ import annotations

import re

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<cmd>\\[a-zA-Z]+|\\.)|(?P<letter>[a-zA-Z])|(?P<op>.))",
    re.S,
)

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi",
    "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Upsilon", "Phi",
    "Psi", "Omega",
}
FUNCTIONS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "exp", "lg",
}
_MULT = {"\\cdot", "\\times", "\\ast", "*"}
_IGNORED = {"\\left", "\\right", "\\displaystyle", "\\,", "\\;", "\\:", "\\!", "\\ ", "\\quad",
            "\\qquad", "\\big", "\\Big", "\\bigg", "\\Bigg", "\\limits"}
_TEXTLIKE = {"\\text", "\\textnormal", "\\mathrm", "\\textrm", "\\mathbf", "\\textbf", "\\mathit",
             "\\mbox", "\\operatorname", "\\boldsymbol", "\\mathnormal"}


class LatexParseError(ValueError):
    """The text is not in the LaTeX subset this module reads."""


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind is None:  # trailing whitespace
            continue
        value = m.group(kind)
        if kind == "cmd" and value in _IGNORED:
            continue
        if kind == "op" and value.isspace():
            continue
        tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, text: str):
        import sympy

        self.sp = sympy
        self.text = text
        self.toks = tokenize(text)
        self.pos = 0
        self.abs_depth = 0

    # ---- token helpers
    def peek(self, k: int = 0):
        i = self.pos + k
        return self.toks[i] if i < len(self.toks) else (None, None)

    def next(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def expect(self, value: str):
        kind, v = self.next()
        if v != value:
            raise LatexParseError(f"expected {value!r} at token {self.pos - 1} of {self.text!r}, got {v!r}")

    def error(self, what: str):
        return LatexParseError(f"{what} at token {self.pos} of {self.text!r}")

    # ---- grammar
    def parse(self):
        if not self.toks:
            raise LatexParseError("empty expression")
        expr = self.additive()
        if self.pos != len(self.toks):
            raise self.error(f"unexpected {self.peek()[1]!r}")
        return expr

    def additive(self):
        left = self.term()
        while True:
            _, v = self.peek()
            if v == "+":
                self.next()
                left = left + self.term()
            elif v == "-":
                self.next()
                left = left - self.term()
            else:
                return left

    def term(self):
        left = self.unary()
        while True:
            kind, v = self.peek()
            if v in _MULT:
                self.next()
                left = left * self.unary()
            elif v in ("/", "\\div"):
                self.next()
                right = self.unary()
                left = left / right
            elif self.starts_atom(kind, v):
                # mixed number: "137 \frac{1}{2}" means 137 + 1/2, not 137 * 1/2
                if v in ("\\frac", "\\dfrac", "\\tfrac") and self._is_int_literal(left) and self._frac_of_ints():
                    left = left + self.unary()
                else:
                    left = left * self.power()
            else:
                return left

    def _is_int_literal(self, expr) -> bool:
        prev = self.toks[self.pos - 1] if self.pos else (None, None)
        return prev[0] == "num" and "." not in prev[1] and expr.is_Integer and expr >= 0

    def _frac_of_ints(self) -> bool:
        kinds = [self.peek(k) for k in range(7)]
        return ([t[1] for t in kinds[1:2]] == ["{"] and kinds[2][0] == "num" and kinds[3][1] == "}"
                and kinds[4][1] == "{" and kinds[5][0] == "num" and kinds[6][1] == "}")

    def starts_atom(self, kind, v) -> bool:
        if kind in ("num", "letter"):
            return True
        if kind == "cmd":
            return v not in _MULT and v not in ("\\div", "\\pm", "\\mp", "\\rfloor", "\\rceil", "\\}")
        if v == "|":
            return self.abs_depth == 0
        return v in ("(", "[", "{")

    def unary(self):
        _, v = self.peek()
        if v == "-":
            self.next()
            return -self.unary()
        if v == "+":
            self.next()
            return self.unary()
        return self.power()

    def power(self):
        base = self.postfix(self.atom())
        if self.peek()[1] == "^":
            self.next()
            exponent = self.script_arg()
            return self.sp.Pow(base, exponent)
        return base

    def postfix(self, expr):
        while self.peek()[1] == "!":
            self.next()
            expr = self.sp.factorial(expr)
        return expr

    def script_arg(self):
        """The argument of ^ or _: a macro argument, which may follow a minus sign (``x^-1``)."""
        if self.peek()[1] == "-":
            self.next()
            return -self.script_arg()
        return self.macro_arg()

    def single_digit(self):
        kind, v = self.next()
        if len(v) > 1:  # "\frac12" or "x^23": the argument is the first character only
            self.toks.insert(self.pos, ("num", v[1:]))
            v = v[0]
        return self.number(v)

    def macro_arg(self):
        """The argument of \\frac, \\sqrt...: a braced group, or one token (one digit of a number)."""
        kind, v = self.peek()
        if v == "{":
            return self.group("{", "}")
        if kind == "num":
            return self.single_digit()
        return self.atom()

    def group(self, open_, close):
        self.expect(open_)
        saved = self.abs_depth
        self.abs_depth = 0
        inner = self.additive()
        self.abs_depth = saved
        self.expect(close)
        return inner

    def number(self, v: str):
        return self.sp.Rational(v) if "." in v else self.sp.Integer(v)

    def symbol_name(self, base: str) -> str:
        if self.peek()[1] == "_":
            self.next()
            _, v = self.peek()
            if v == "{":
                sub = self.braced_source("subscript")
            else:
                self.next()
                sub = v
            return f"{base}_{sub}"
        return base

    def atom(self):
        kind, v = self.next()
        sp = self.sp
        if kind is None:
            raise self.error("unexpected end")
        if kind == "num":
            return self.number(v)
        if kind == "letter":
            name = self.symbol_name(v)
            if name == "i":
                return sp.I
            if name == "e":
                return sp.E
            return sp.Symbol(name)
        if v == "(":
            self.pos -= 1
            return self.group("(", ")")
        if v == "[":
            self.pos -= 1
            return self.group("[", "]")
        if v == "{":
            self.pos -= 1
            return self.group("{", "}")
        if v == "|":
            self.abs_depth += 1
            inner = self.additive()
            self.abs_depth -= 1
            self.expect("|")
            return sp.Abs(inner)
        if kind != "cmd":
            raise self.error(f"unexpected {v!r}")
        name = v[1:]
        if name in ("frac", "dfrac", "tfrac", "cfrac"):
            num = self.macro_arg()
            den = self.macro_arg()
            return num / den
        if name in ("binom", "dbinom", "tbinom"):
            n = self.macro_arg()
            k = self.macro_arg()
            return sp.binomial(n, k)
        if name == "sqrt":
            if self.peek()[1] == "[":
                index = self.group("[", "]")
                return sp.root(self.macro_arg(), index)
            return sp.sqrt(self.macro_arg())
        if name == "pi":
            return sp.pi
        if name in ("infty", "infinity"):
            return sp.oo
        if name in GREEK:
            return sp.Symbol(self.symbol_name(name))
        if name in ("lfloor", "lceil"):
            inner = self.additive()
            self.expect("\\rfloor" if name == "lfloor" else "\\rceil")
            return sp.floor(inner) if name == "lfloor" else sp.ceiling(inner)
        if name in ("{",):
            return self.group_cmd()
        if v in _TEXTLIKE:
            return self.text_arg()
        if name in FUNCTIONS:
            return self.function(name)
        raise self.error(f"unsupported command {v!r}")

    def group_cmd(self):
        inner = self.additive()
        self.expect("\\}")
        return inner

    def braced_source(self, what: str) -> str:
        """The tokens of the balanced ``{...}`` group that comes next, joined back into text."""
        self.expect("{")
        start = self.pos
        depth = 1
        while depth:
            _, v = self.next()
            if v is None:
                raise self.error(f"unclosed {what}")
            depth += v == "{"
            depth -= v == "}"
        return "".join(t[1] for t in self.toks[start:self.pos - 1])

    def text_arg(self):
        content = self.braced_source("\\text{").strip()
        if re.fullmatch(r"[a-zA-Z]", content):
            return self.sp.I if content == "i" else self.sp.E if content == "e" else self.sp.Symbol(content)
        if re.fullmatch(r"\d+(\.\d*)?", content):
            return self.number(content)
        raise self.error(f"text {content!r} is not math")

    def function(self, name: str):
        sp = self.sp
        exponent = None
        base = None
        if name in ("log", "lg") and self.peek()[1] == "_":
            self.next()
            base = self.script_arg()
        if self.peek()[1] == "^":
            self.next()
            exponent = self.script_arg()
        if self.peek()[1] in ("(", "[", "{"):
            arg = self.postfix(self.atom())
        else:
            # "\sin 2x" reads as sin(2x): the argument runs over an implicit product
            arg = self.power()
            while self.starts_atom(*self.peek()) and self.peek()[0] != "cmd":
                arg = arg * self.power()
        inverse = exponent is not None and exponent == -1 and name in ("sin", "cos", "tan")
        if inverse:
            value = {"sin": sp.asin, "cos": sp.acos, "tan": sp.atan}[name](arg)
            exponent = None
        elif name in ("log", "lg"):
            if base is None and name == "lg":
                base = sp.Integer(10)
            value = sp.log(arg, base) if base is not None else sp.log(arg)
        else:
            fn = {"ln": sp.log, "arcsin": sp.asin, "arccos": sp.acos, "arctan": sp.atan}.get(name)
            value = (fn or getattr(sp, name))(arg)
        return value ** exponent if exponent is not None else value


def latex_to_sympy(text: str):
    """Parse one scalar LaTeX expression into sympy; raises LatexParseError."""
    try:
        return _Parser(text).parse()
    except LatexParseError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, AttributeError) as e:
        raise LatexParseError(f"cannot convert {text!r}: {e}") from e
