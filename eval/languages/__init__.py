"""Programming languages for the multilingual code benchmarks, one module each (toolchain, builds,
assembly rules, stop sequences as data): ``LANGUAGES[name]`` is that module."""
from __future__ import annotations

import importlib

NAMES = ("cpp", "java", "js", "ts", "rust", "go", "sh", "php")


def language_module(name: str):
    """The module of language ``name`` (one of NAMES); an unknown name raises ValueError listing them."""
    if name not in NAMES:
        raise ValueError(f"unknown language {name!r}; known: {', '.join(NAMES)}")
    return importlib.import_module(f"domainspec.eval.languages.{name}")
