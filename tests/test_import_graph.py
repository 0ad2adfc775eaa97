"""Imports flow one way: common <- eval <- coder, math (STYLE.md #12).

The engine never imports a domain, eval never imports coder or math, and the
two domains never import each other. The CLI and the pipeline runner reach
the domains only through module-name strings resolved at run time.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "common": {"common"},
    "eval": {"common", "eval"},
    "coder": {"common", "eval", "coder"},
    "math": {"common", "eval", "math"},
}


def imported_packages(path: Path) -> set[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for n in names:
            parts = n.split(".")
            if parts[0] == "domainspec" and len(parts) > 1:
                found.add((node.lineno, parts[1]))
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_flow_one_way(layer):
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for lineno, pkg in imported_packages(path):
            if pkg not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)}:{lineno} imports domainspec.{pkg}")
    assert not bad, "\n".join(bad)


def test_no_relative_imports_escape_the_layer():
    """Relative imports would hide a cross-layer import from the check above."""
    bad = []
    for layer in ALLOWED:
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level > 1:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad
