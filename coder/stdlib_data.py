"""Instruction data from the Python standard library: functions with doctests.

Every machine with Python has the standard library's source, and many of its
module-level functions carry a docstring with ``>>>`` examples. Each such function
becomes one SFT row: the user asks for a function with that signature and
docstring, the assistant answers with the function's source, and the row carries
a test program that runs the docstring's examples (``doctest``) against the
*response's* function inside the module's namespace. coder/exec_filter.py runs
those tests in the sandbox and keeps the rows that pass.

Usage::

    rows = stdlib_doctest_rows(limit=200)   # list of {"messages", "test_setup", "test", "meta"}

Not here: execution (this module never runs the doctests) and decontamination.
"""
from __future__ import annotations

import ast
import sysconfig
from pathlib import Path
from typing import Iterator

from domainspec.coder.prompts import code_response, function_request

# Package folders whose doctests need a GUI, a network, a terminal or are tests themselves.
_SKIP_PARTS = {"test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages",
               "dist-packages", "__pycache__", "venv", "pydoc_data", "msilib", "curses", "asyncio"}
_SKIP_MODULES = {"turtle", "antigravity", "this", "doctest", "pdb", "webbrowser", "__main__"}


def _module_name(path: Path, root: Path) -> str | None:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if any(p in _SKIP_PARTS or p.startswith("_test") for p in parts):
        return None
    if parts[-1] == "__init__":
        parts = parts[:-1]
    if not parts or parts[0] in _SKIP_MODULES or "-" in "".join(parts):
        return None
    return ".".join(parts)


def _setup_program(module: str, name: str) -> str:
    # The response's function must see the module's globals (helpers, constants) but must not
    # fall back on the module's own copy of itself, or an empty response would pass.
    return (f"import importlib as _il\n"
            f"globals().update({{_k: _v for _k, _v in vars(_il.import_module({module!r})).items() "
            f"if not _k.startswith('__')}})\n"
            f"globals().pop({name!r}, None)\n")


def _test_program(module: str, name: str, doc: str) -> str:
    return (f"import doctest as _dt\n"
            f"assert callable(globals().get({name!r})), 'the response defines no function {name}'\n"
            f"_t = _dt.DocTestParser().get_doctest({doc!r}, dict(globals()), {name!r}, {module!r}, 0)\n"
            f"_r = _dt.DocTestRunner(verbose=False, optionflags=_dt.ELLIPSIS | _dt.NORMALIZE_WHITESPACE)\n"
            f"_r.run(_t)\n"
            f"assert _r.tries > 0 and _r.failures == 0, f'{{_r.failures}} of {{_r.tries}} examples failed'\n")


def iter_doctest_functions(stdlib_dir: str | Path | None = None, max_chars: int = 1500,
                           doctest_only: bool = True) -> Iterator[dict]:
    """Module-level functions with a docstring: {module, name, signature, doc, source, has_doctest}.

    ``doctest_only`` keeps only docstrings with ``>>>`` examples. Sorted by file path, so
    the order is the same on every run of one Python version. Functions whose source
    exceeds ``max_chars`` are skipped (too long for SFT rows here).
    """
    root = Path(stdlib_dir or sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        if module is None:
            continue
        try:
            text = path.read_text(encoding="utf-8")
            if doctest_only and ">>>" not in text:
                continue  # most files: no doctest anywhere, skip the (slow) parse
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef) or node.decorator_list:
                continue
            doc = ast.get_docstring(node, clean=True)
            if not doc or (doctest_only and ">>>" not in doc):
                continue
            source = ast.get_source_segment(text, node)
            if not source or len(source) > max_chars:
                continue
            args = ast.unparse(node.args)
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            yield {"module": module, "name": node.name, "signature": f"def {node.name}({args}){returns}:",
                   "doc": doc, "source": source, "has_doctest": ">>>" in doc}


def stdlib_doctest_rows(limit: int | None = None, stdlib_dir: str | Path | None = None,
                        max_chars: int = 1500, doctest_only: bool = True) -> list[dict]:
    """SFT rows from the standard library's documented functions.

    Rows of functions with doctests carry ``test_setup`` + ``test`` (run around the
    response's code); with ``doctest_only=False`` the other documented functions come
    too, without tests (the execution filter counts them as ``no_tests``).
    """
    rows = []
    for fn in iter_doctest_functions(stdlib_dir, max_chars, doctest_only):
        row = {
            "messages": [{"role": "user", "content": function_request(fn["signature"], fn["doc"])},
                         {"role": "assistant", "content": code_response(fn["source"])}],
            "meta": {"source": "stdlib_doctest", "id": f"{fn['module']}.{fn['name']}"},
        }
        if fn["has_doctest"]:
            row["test_setup"] = _setup_program(fn["module"], fn["name"])
            row["test"] = _test_program(fn["module"], fn["name"], fn["doc"])
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows
