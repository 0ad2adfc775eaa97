"""The benchmark registry: every benchmark is registered by name here, in one place.

Usage::

    from domainspec.eval.benchmarks.registry import get_benchmark, BENCHMARKS
    bench = get_benchmark("mbpp")
    register(MyBenchmark())   # a new benchmark: one module + one line in BUILTIN

    class StageConfig(Config):
        benchmark: BenchmarkName          # a config error (file:line: key: ...) listing the known names
        math_only: MathBenchmarkName      # registered and of kind "math"

A registration is checked when it happens: a missing attribute, a wrong ``kind``
or a name already taken by another object raises (a broken benchmark never
disappears silently). Benchmark modules import nothing heavy, so importing the
registry is cheap.
"""
from __future__ import annotations

import importlib
from typing import Annotated

from pydantic import AfterValidator

from domainspec.eval.benchmarks.base import Kind

# name -> "module:object"; the only list to touch when adding a benchmark
BUILTIN = {
    "humaneval": "domainspec.eval.benchmarks.humaneval:HUMANEVAL",
    "mbpp": "domainspec.eval.benchmarks.mbpp:MBPP",
    "humaneval_plus": "domainspec.eval.benchmarks.evalplus:HUMANEVAL_PLUS",
    "mbpp_plus": "domainspec.eval.benchmarks.evalplus:MBPP_PLUS",
    "gsm8k": "domainspec.eval.benchmarks.gsm8k:GSM8K",
    "math": "domainspec.eval.benchmarks.hendrycks_math:MATH",
    # the rest of Qwen2.5-Math's evaluation suite (eval/benchmarks/qwen_math_suite.py)
    **{name: f"domainspec.eval.benchmarks.qwen_math_suite:{name.upper()}" for name in (
        "aime24", "amc23", "minerva_math", "olympiadbench", "college_math", "gaokao2023en", "svamp", "asdiv",
        "cmath", "math23k")},
    # HumanEval in other languages, one name per format and language (eval/benchmarks/multilingual.py)
    **{name: f"domainspec.eval.benchmarks.multilingual:{name.upper().replace('-', '_')}" for name in (
        "humaneval-x-cpp", "humaneval-x-go", "humaneval-x-java", "humaneval-x-js", "humaneval-x-rust",
        "multipl-e-cpp", "multipl-e-go", "multipl-e-java", "multipl-e-js", "multipl-e-php", "multipl-e-rs",
        "multipl-e-sh", "multipl-e-ts")},
}

_COMMON = ("load", "prompt", "stop_sequences", "protocol", "local_copy", "decontamination_texts")
_BY_KIND = {Kind.CODE: ("program",), Kind.MATH: ("gold", "breakdown")}

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
        raise RegistryError(f"benchmark {name!r}: kind must be one of {sorted(k.value for k in _BY_KIND)}, got {kind!r}")
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


def _unknown(name: str) -> str:
    return f"unknown benchmark {name!r}; registered: {', '.join(sorted(BENCHMARKS))}"


def get_benchmark(name: str):
    """The registered benchmark ``name``; an unknown name raises KeyError listing the known ones."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(_unknown(name)) from None


def benchmark_names(kind: str | None = None) -> list[str]:
    """Registered names (of one ``kind`` when given), sorted."""
    return sorted(n for n, b in BENCHMARKS.items() if kind is None or b.kind == kind)


def check_registered(name: str) -> str:
    """``name`` when it is a registered benchmark; else ValueError listing the known names (a pydantic validator)."""
    if name not in BENCHMARKS:
        raise ValueError(_unknown(name))
    return name


def check_math(name: str) -> str:
    """``name`` when it is a registered math benchmark; else ValueError listing the math ones."""
    if BENCHMARKS.get(name) is None or BENCHMARKS[name].kind is not Kind.MATH:
        what = f"{BENCHMARKS[name].kind} benchmark" if name in BENCHMARKS else "unknown benchmark"
        raise ValueError(f"{what} {name!r} where a math benchmark is needed; math benchmarks: "
                         f"{', '.join(benchmark_names('math'))}")
    return name


# config field types: a stage config naming a benchmark is checked against this registry when it is built
BenchmarkName = Annotated[str, AfterValidator(check_registered)]
MathBenchmarkName = Annotated[str, AfterValidator(check_math)]


_register_builtins()
