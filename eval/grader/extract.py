"""Final-answer extraction from a model's reply or a reference solution (strict mode).

``extract_final(text, currency=False)`` first deletes GSM8K's calculator annotations
(``<<2*9=18>>``: never the answer), then tries, in order:
1. ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces; the last one; boxes written one after another,
   separated only by commas, ``and``, ``\\quad`` or math delimiters, are joined into a list;
   boxes joined by "or" are alternative forms of one answer: the last one is taken);
2. GSM8K's ``#### N``;
3. "the final answer is ..." / "the answer is ..." / "Final Answer: ..." (up to the end of the
   sentence; in the Minerva form "Final Answer: The final answer is $x$. I hope it is correct."
   the math between the dollars);
4. the last inline math (``$...$``, ``\\(...\\)``, ``\\[...\\]``) of a reply that has some;
5. the whole text when it is short and reads as an answer, not a sentence (``10 units``, ``x+1``);
6. the last number (GSM8K-style replies: "... so she pays 18 dollars.").

``currency=True`` (benchmarks whose ``dollar_is_currency`` is set: GSM8K) reads a ``$`` as money:
- a ``$`` right before a number (``$2``, ``$ 1,000``, ``-$5``) or right after one (``18$``) is a
  currency sign and is deleted, unless it opens inline math on its line (``$9 \\times 2 = 18$``:
  the next ``$`` of the line closes it, is no currency sign itself, and no word stands between);
  ``\\$`` is always a literal sign and is deleted;
- rules 3-5 become: whichever comes later of the last line starting with ``A:`` / ``Answer:``
  (markdown allowed) and the last "the answer is" / "final answer:" phrase (``is`` or ``:``
  required), counting only those whose answer holds a digit; else the last number, or the inline
  math it stands in (``$x = 9$``);
- the answer found is kept whole; against a numeric gold the grader compares its one number
  (:func:`number_in`: ``18 km/h``, ``**18**``, ``2 * 9 = 18`` -> ``18``; ``\\frac{1}{2}`` stays).
Returns None when nothing answer-like is found. It does not normalize the answer (see
``eval/grader/normalize.py``). Qwen2.5-Math's own extraction lives in ``eval/grader/qwen_compat.py``.
"""
from __future__ import annotations

import re

_BOX_CMDS = ("\\boxed", "\\fbox")
# what may separate two boxes that together form one answer ("\boxed{1}, \boxed{2}")
_BOX_JOINER = re.compile(
    r"^(?:\s|,|;|\$|\\\]|\\\[|\\\(|\\\)|\\quad|\\qquad|\\,|\\;|and|\\text\{\s*(?:and|,)?\s*\})*$")
# "the (final) answer is", and the Chinese 答案是 / 答案为 (CMATH, Math23K replies)
_ANSWER_IS = re.compile(r"(?:(?:final\s+answer|the\s+answer)\s*(?P<link>is|:)?|答案\s*(?P<zh>是|为|：))\s*[:：]?", re.I)
_MATH_SEGMENT = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\b")
_ANNOTATION = re.compile(r"<<[^<>\n]*>>")  # GSM8K's calculator annotation "<<2*9=18>>"
_BEFORE_NUMBER = re.compile(r" ?-?\.?\d")  # what follows a currency "$": "$2", "$ 1,000", "$-5", "$.50"
_ANSWER_LINE = re.compile(r"^[ \t>#*_]*(?:A|Answer)[ \t]*:[ \t*_]*(\S[^\n]*)", re.M | re.I)
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
# one number with only words, signs or markup around it ("**18**", "18 km/h", "She pays 18.")
_DECORATED_NUMBER = re.compile(
    r"[^\d\\^_=+]*?(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\\?%)?|-?\.\d+)(?![A-Za-z])[^\d\\^_=+]*")


def find_boxes(text: str) -> list[tuple[int, int, str]]:
    """Every top-level ``\\boxed{}``/``\\fbox{}`` as (start, end, content), braces matched."""
    boxes = []
    i = 0
    while True:
        starts = [(text.find(cmd, i), cmd) for cmd in _BOX_CMDS]
        starts = [(s, c) for s, c in starts if s >= 0]
        if not starts:
            return boxes
        start, cmd = min(starts)
        j = start + len(cmd)
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] == "{":
            depth = 0
            for k in range(j, len(text)):
                if text[k] == "{" and text[k - 1] != "\\":
                    depth += 1
                elif text[k] == "}" and text[k - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        boxes.append((start, k + 1, text[j + 1:k]))
                        i = k + 1
                        break
            else:  # unbalanced: take the rest (a truncated reply)
                boxes.append((start, len(text), text[j + 1:]))
                return boxes
        elif cmd == "\\boxed" and j > start + len(cmd):
            # "\boxed 5": the argument runs to the next space or dollar
            m = re.match(r"[^\s$]+", text[j:])
            if m:
                boxes.append((start, j + m.end(), m.group(0)))
            i = j + (m.end() if m else 0)
        else:
            i = j


def last_boxed(text: str) -> str | None:
    """Content of the last box, joined with the boxes right before it that are separated only by
    commas/``and``/spacing (a multi-part answer written as several boxes)."""
    boxes = find_boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        between = text[prev[1]:group[0][0]]
        if not _BOX_JOINER.match(between):
            break
        group.insert(0, prev)
    return ", ".join(b[2].strip() for b in group)


def _answer_phrase_end(text: str, linked: bool = False) -> int | None:
    """Where the answer after the last "the answer (is)" phrase starts; ``linked``: only phrases
    followed by ``is`` or ``:`` count ("To find the answer, ..." does not)."""
    ends = [m.end() for m in _ANSWER_IS.finditer(text) if m.group("link") or m.group("zh") or not linked]
    return ends[-1] if ends else None


def _answer_in(rest: str) -> str | None:
    """The answer at the start of ``rest`` (the text after an answer phrase or ``A:``)."""
    rest = rest.strip()
    if not rest:
        return None
    seg = _MATH_SEGMENT.match(rest)
    if seg:  # "The answer is $34$." -> the math right after the phrase
        return next(g for g in seg.groups() if g is not None).strip()
    # up to the end of the sentence: a period followed by space/end, or a newline
    sentence = re.split(r"\.\s|\.$|\n|。", rest, maxsplit=1)[0].strip()
    # "The largest $n$ is 34" -> what follows the last " is "
    if " is " in sentence:
        sentence = sentence.rsplit(" is ", 1)[1]
    segs = list(_MATH_SEGMENT.finditer(sentence))
    if segs:
        return next(g for g in segs[-1].groups() if g is not None).strip()
    return sentence.strip() or None


def looks_like_answer(text: str) -> bool:
    """Short text that is an answer rather than prose: at most two words of 2+ letters outside
    LaTeX commands (``10 units``, ``28 percent``, ``x + y``, ``\\text{Evelyn}``)."""
    stripped = text.strip()
    if not stripped or len(stripped) > 120 or "\n" in stripped:
        return False
    return len(_WORD.findall(re.sub(r"\\[a-zA-Z]+", " ", stripped))) <= 2


def last_number(text: str) -> str | None:
    nums = _NUMBER.findall(text)
    if not nums:
        return None
    num = nums[-1].rstrip(",")
    return num.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", num) else num


def _drop_currency_signs(text: str) -> str:
    """``text`` without its currency dollars (see the module docstring), so that every ``$`` left
    is a math delimiter."""
    text = text.replace("\\$", "")  # an escaped dollar is a literal sign, never a delimiter
    out, i = [], 0
    while (j := text.find("$", i)) >= 0:
        if text.startswith("$$", j):  # display math: kept whole
            end = text.find("$$", j + 2)
            end = len(text) if end < 0 else end + 2
        elif (_BEFORE_NUMBER.match(text, j + 1) and not _opens_math(text, j)) or text[j - 1:j].isdigit():
            out.append(text[i:j])
            i = j + 1
            continue
        else:  # an inline-math opener: kept with its closer
            end = text.find("$", j + 1)
            end = len(text) if end < 0 else end + 1
        out.append(text[i:end])
        i = end
    out.append(text[i:])
    return "".join(out)


def _opens_math(text: str, j: int) -> bool:
    """Whether the ``$`` at ``j``, right before a number, opens inline math (``$9 \\times 2 = 18$``)
    rather than being money (``$2 per egg ... = $18``)."""
    line_end = text.find("\n", j)
    k = text.find("$", j + 1, len(text) if line_end < 0 else line_end)
    if k < 0 or _BEFORE_NUMBER.match(text, k + 1):
        return False
    body = re.sub(r"\\[a-zA-Z]+", " ", _TEXT_WRAPPER.sub(" ", text[j + 1:k]))
    return not _WORD.search(body)


def number_in(answer: str) -> str:
    """The number of an answer that is one number among words, signs or markup, taken after the
    last ``=`` (``18 km/h``, ``**18**``, ``2 * 9 = 18``, ``The jacket costs 40``); any other answer
    unchanged, ordinals too (``60th``). The grader applies it in currency mode against a numeric
    gold only (``Vendor 2`` and ``February 3rd`` are ASDiv golds)."""
    plain = re.sub(r"\\[,;:! ]", " ", _TEXT_WRAPPER.sub(lambda m: f" {m.group(1)}", answer))
    m = _DECORATED_NUMBER.fullmatch(plain.rsplit("=", 1)[-1])
    return m.group(1) if m else answer


def _currency_answer(text: str) -> str | None:
    """Rules 3-6 in currency mode: the later marked answer that holds a digit, else the last number."""
    marked = [(m.start(), _answer_in(m.group(1))) for m in _ANSWER_LINE.finditer(text)][-1:]
    end = _answer_phrase_end(text, linked=True)
    if end is not None:
        marked.append((end, _answer_in(text[end:])))
    marked = [(pos, a) for pos, a in marked if a and re.search(r"\d", a)]
    if marked:
        return max(marked)[1]
    nums = list(_NUMBER.finditer(text))
    if not nums:
        return None
    for seg in _MATH_SEGMENT.finditer(text):
        if seg.start() < nums[-1].start() < seg.end():  # "$x = 16 - 7 = 9$": that math's answer
            return next(g for g in seg.groups() if g is not None).strip()
    return last_number(text)


def extract_final(text: str, currency: bool = False) -> str | None:
    """The final answer of ``text`` (rules in the module docstring); ``currency``: ``$`` before a
    number is money (GSM8K), not a math delimiter."""
    if text is None:
        return None
    text = _ANNOTATION.sub("", text)  # "$<<2*9=18>>18": the annotation never supplies the answer
    if currency:
        text = _drop_currency_signs(text)
    boxed = last_boxed(text)
    if boxed is not None:
        answer = boxed.strip()
    elif (m := re.search(r"####\s*([^\n]*)", text)) and m.group(1).strip():
        answer = m.group(1).strip().rstrip(".")
    elif currency:
        answer = _currency_answer(text)
    else:
        return _plain_answer(text)
    return answer


def _plain_answer(text: str) -> str | None:
    """Rules 3-6 when ``$`` is a math delimiter (MATH and the like)."""
    end = _answer_phrase_end(text)
    phrase = _answer_in(text[end:]) if end is not None else None
    if phrase:
        return phrase.rstrip(". ").strip()
    segs = list(_MATH_SEGMENT.finditer(text))
    if segs:
        if looks_like_answer(_MATH_SEGMENT.sub(lambda m: " X ", text)):
            # the reply is just math plus an annotation ("$125$ miles"): keep the annotation
            return text.strip().rstrip(".").strip()
        return next(g for g in segs[-1].groups() if g is not None).strip()
    if looks_like_answer(text):
        return text.strip().rstrip(".").strip()
    return last_number(text)
