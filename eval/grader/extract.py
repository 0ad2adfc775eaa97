"""Final-answer extraction from a model's reply or a reference solution (strict mode).

``extract_final(text)`` tries, in order:
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
Returns None when nothing answer-like is found. It does not normalize the answer (see
``eval/grader/normalize.py``). Qwen2.5-Math's own extraction lives in ``eval/grader/qwen_compat.py``.
"""
from __future__ import annotations

import re

_BOX_CMDS = ("\\boxed", "\\fbox")
# what may separate two boxes that together form one answer ("\boxed{1}, \boxed{2}")
_BOX_JOINER = re.compile(
    r"^(?:\s|,|;|\$|\\\]|\\\[|\\\(|\\\)|\\quad|\\qquad|\\,|\\;|and|\\text\{\s*(?:and|,)?\s*\})*$")
_ANSWER_IS = re.compile(r"(?:final\s+answer|the\s+answer)\s*(?:is|:)?\s*:?", re.I)
_MATH_SEGMENT = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\b")


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


def _after_answer_phrase(text: str) -> str | None:
    matches = list(_ANSWER_IS.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():].strip()
    if not rest:
        return None
    seg = _MATH_SEGMENT.match(rest)
    if seg:  # "The answer is $34$." -> the math right after the phrase
        return next(g for g in seg.groups() if g is not None).strip()
    # up to the end of the sentence: a period followed by space/end, or a newline
    sentence = re.split(r"\.\s|\.$|\n", rest, maxsplit=1)[0].strip()
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


def extract_final(text: str) -> str | None:
    if text is None:
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    m = re.search(r"####\s*([^\n]*)", text)
    if m and m.group(1).strip():
        return m.group(1).strip().rstrip(".")
    phrase = _after_answer_phrase(text)
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

