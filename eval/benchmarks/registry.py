"""The benchmark registry: every benchmark is registered by name here, in one place.

Usage::

    from domainspec.eval.benchmarks.registry import get_benchmark, BENCHMARKS
    bench = get_benchmark("mbpp")
    register(MyBenchmark())   # a new benchmark: one module + one line in BUILTIN

A registration is checked when it happens: a missing attribute, a wrong ``kind``
or a name already taken by another object raises (a broken benchmark never
disappears silently). Benchmark modules import nothing heavy, so importing the
registry is cheap.
"""
from __future__ import annotations

import importlib

# name -> "module:object"; the only list to touch when adding a benchmark
BUILTIN = {
    "humaneval": "domainspec.eval.benchmarks.humaneval:HUMANEVAL",
    "mbpp": "domainspec.eval.benchmarks.mbpp:MBPP",
    "gsm8k": "domainspec.eval.benchmarks.gsm8k:GSM8K",
    "math": "domainspec.eval.benchmarks.hendrycks_math:MATH",
}

_COMMON = ("load", "prompt", "stop_sequences", "protocol")
_BY_KIND = {"code": ("program",), "math": ("gold", "breakdown")}

BENCHMARKS: dict = {}


class RegistryError(TypeError):
    """A benchmark that cannot be registered."""


def register(benchmark):
    """Check ``benchmark`` against the interface in :mod:`domainspec.eval.benchmarks.base` and add it; returns it."""
    name = getattr(benchmark, "name", None)
    if not isinstance(name, str) or not name:
        raise RegistryError(f"{benchmark!r}: a benchmark needs a non-empty string 'name'")
    if not isinstance(getattr(benchmark, "version", None), str):
        raise RegistryError(f"benchmark {name!r}: needs a string 'version'")
    kind = getattr(benchmark, "kind", None)
    if kind not in _BY_KIND:
        raise RegistryError(f"benchmark {name!r}: kind must be one of {sorted(_BY_KIND)}, got {kind!r}")
    missing = [m for m in _COMMON + _BY_KIND[kind] if not callable(getattr(benchmark, m, None))]
    if missing:
        raise RegistryError(f"benchmark {name!r} ({kind}): missing method(s) {', '.join(missing)}")
    if name in BENCHMARKS and BENCHMARKS[name] is not benchmark:
        raise RegistryError(f"benchmark name {name!r} is already registered by {BENCHMARKS[name]!r}")
    BENCHMARKS[name] = benchmark
    return benchmark


def _register_builtins() -> None:
    for name, spec in BUILTIN.items():
        module, _, attr = spec.partition(":")
        obj = getattr(importlib.import_module(module), attr)
        if getattr(obj, "name", None) != name:
            raise RegistryError(f"{spec}: registered as {name!r} but its name is {getattr(obj, 'name', None)!r}")
        register(obj)


def get_benchmark(name: str):
    """The registered benchmark ``name``; an unknown name raises KeyError listing the known ones."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; registered: {', '.join(sorted(BENCHMARKS))}") from None


def benchmark_names() -> list[str]:
    return sorted(BENCHMARKS)


_register_builtins()
