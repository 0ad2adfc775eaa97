"""A non-Python program for the sandbox: source files, an optional compile step and a run command.

Usage::

    prog = Program(files=(("main.cpp", source),), compile=("/usr/bin/g++", "-o", "prog", "main.cpp"),
                   run=("./prog",), language="cpp")
    sandbox.run_many([prog, "print('python stays a plain string')"])

The worker writes ``files`` into the program's private temporary directory (its working
directory and ``$HOME``), runs ``compile`` there under the sandbox's ``compile_timeout_s`` and
then ``run`` under the program's own time limit, both with the same jail as Python programs
(:mod:`~domainspec.common.sandbox.worker`). PASSED = the run exits 0; a compile step that fails
or overruns its limit is ERROR (the compiler's last error line ends stderr); a run that
overruns is TIMEOUT; any other exit is FAILED.

Commands are argv tuples with absolute paths (the child's ``PATH`` is fixed; toolchains are
resolved by the caller, see ``domainspec.eval.languages``). ``env`` adds variables to the
scrubbed environment; ``{dir}`` in a value or argument is replaced by the private directory.
``memory``: which rlimit carries ``memory_mb``: ``"as"`` (address space, as for Python) or
``"data"`` (RLIMIT_DATA, for runtimes that reserve far more address space than they use: the
JVM, Go, V8). Nothing here runs anything.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Program:
    files: tuple[tuple[str, str], ...]
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    memory: Literal["as", "data"] = "as"
    language: str = ""

    def __post_init__(self):
        if not self.files:
            raise ValueError("Program: needs at least one file")
        for name, text in self.files:
            if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or ".." in name:
                raise ValueError(f"Program: file name {name!r} must be a plain name (letters, digits, _ . -)")
            if not isinstance(text, str):
                raise ValueError(f"Program: file {name!r} content must be a string, got {type(text).__name__}")
        for what, argv in (("run", self.run), ("compile", self.compile or ("x",))):
            if not argv or not all(isinstance(a, str) and a for a in argv):
                raise ValueError(f"Program: {what} must be a non-empty argv of strings, got {argv!r}")
        if self.memory not in ("as", "data"):
            raise ValueError(f"Program: memory must be 'as' or 'data', got {self.memory!r}")

    @property
    def source(self) -> str:
        """The text of the first file (the program's source, for reports and debugging)."""
        return self.files[0][1]

    def to_request(self, compile_timeout_s: float) -> dict:
        """The JSON form the worker reads (see the worker's protocol)."""
        return {"files": [list(f) for f in self.files], "run": list(self.run),
                "compile": list(self.compile) if self.compile else None, "env": dict(self.env),
                "memory": self.memory, "compile_timeout_s": float(compile_timeout_s)}

    def key(self) -> dict:
        """What identifies this program for caches (its runtime, see time_limits)."""
        return {"files": self.files, "run": self.run, "compile": self.compile, "env": self.env,
                "language": self.language}
