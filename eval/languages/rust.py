"""Rust (rustc): HumanEval-X (``#[cfg(test)]`` tests: ``rustc --test``, the harness binary run
single-threaded) and MultiPL-E (``fn main`` with asserts: a plain binary). Edition 2021.

HumanEval-X's Rust prompt is only the doc comment; the signature and ``use`` lines are in
``declaration``, so the prompt shown is prompt + declaration and the program is
prompt + declaration + completion + test (the CodeGeeX evaluator's order puts the declaration
first; the comment's place does not matter to rustc). The declarations ``use`` three crates
(rand, regex, md5) that a bare ``rustc`` cannot link; those ``use`` lines are dropped, so the six
tasks whose solutions or tests need a crate (Rust/32, 38, 50, 53: rand; 91: regex; 162: md5) do
not compile here.

``rustc`` found on PATH may be rustup's proxy, which needs the user's ``$HOME``; the sandbox gives
programs their own, so the real compiler of the default toolchain (``rustc --print sysroot``) is used.
"""
from __future__ import annotations

import os
import subprocess

from domainspec.eval.languages.base import Build, Format, Language, Tool

EXTERNAL_CRATES = ("rand", "regex", "md5")


def real_rustc(path: str) -> str:
    try:
        sysroot = subprocess.run([path, "--print", "sysroot"], capture_output=True, text=True,
                                 timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return path
    real = os.path.join(sysroot, "bin", "rustc")
    return real if sysroot and os.access(real, os.X_OK) else path


LANGUAGE = Language("rust", tools={"rustc": Tool("rustc", "apt-get install rustc (or rustup)", real_rustc)})

# the system linker: rustup's toolchains link with their bundled rust-lld, which gcc finds with
# access(2) - and access ignores the capability that lets the program's uid into a root-only $HOME
RUSTC = ("$rustc", "--edition", "2021", "-A", "warnings", "-C", "link-arg=-fuse-ld=bfd", "-o", "prog", "main.rs")
TEST_BUILD = Build("main.rs", compile=(*RUSTC, "--test"), run=("./prog", "--test-threads=1", "-q"))
BIN_BUILD = Build("main.rs", compile=RUSTC, run=("./prog",))


def declaration(row: dict) -> str:
    """The row's declaration without the ``use`` lines of crates outside the standard library."""
    keep = [ln for ln in row["declaration"].splitlines(keepends=True)
            if not any(ln.strip().startswith(f"use {c}") for c in EXTERNAL_CRATES)]
    return "".join(keep)


def humaneval_x(row: dict, completion: str) -> str:
    return row["prompt"] + declaration(row) + completion + "\n" + row["test"]


HUMANEVAL_X = Format("rust", TEST_BUILD, stops=("\nfn main", "\n#[cfg(test)]", "\n/*", "\n//"),
                     assemble=humaneval_x, prompt=lambda row: row["prompt"] + declaration(row))
MULTIPL_E = Format("rs", BIN_BUILD, stops=("\n}",))
