"""What a programming language is to the sandbox: its toolchain, how a source file is built and run.

Each language module (cpp, java, js, ts, rust, go, sh, php) defines one :class:`Language`:
the tools it needs (with what to install when one is missing), one :class:`Build` per
benchmark format (file name, compile and run argv; ``$tool`` names a tool, resolved to an
absolute path with ``shutil.which`` when a program is built, ``{dir}`` is the program's
private directory), the assembly rule of each format and its stop sequences. Nothing here
runs model code; :meth:`Language.program` only builds a
:class:`~domainspec.common.sandbox.program.Program` for the sandbox.
"""
from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field
from typing import Callable, Literal

from domainspec.common.artifacts import DataFileError
from domainspec.common.sandbox.program import Program


class ToolchainMissing(DataFileError):
    """A benchmark's compiler/interpreter (or a library its tests need) is not installed; the message
    says what to install. A setup error, raised before any program runs (``eval score`` exits 2)."""


@dataclass(frozen=True)
class Tool:
    command: str  # what shutil.which looks for
    install: str  # how to get it, e.g. "apt-get install g++"
    resolve: Callable[[str], str] | None = None  # found path -> the binary to run (e.g. past rustup's proxy)


@dataclass(frozen=True)
class Build:
    """How one source file becomes a program: its name, the compile argv (None: interpreted), the run argv."""

    file_name: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    needs: tuple[tuple[str, str], ...] = ()  # (path that must exist, what to install) - libraries, test frameworks


def row_prompt(row: dict) -> str:
    return row["prompt"]


def prompt_completion_tests(row: dict, completion: str) -> str:
    """MultiPL-E's assembly rule: prompt + completion + "\\n" + tests (its tests close the function)."""
    return row["prompt"] + completion + "\n" + row["tests"]


@dataclass(frozen=True)
class Format:
    """One benchmark format in one language: the data file's language code, how a program is built,
    the base-model stop sequences, the prompt shown and the assembly rule (row, continuation) -> source."""

    data_code: str  # "rust" in humaneval_rust.jsonl.gz, "rs" in humaneval-rs.jsonl.gz
    build: Build
    stops: tuple[str, ...]
    assemble: Callable[[dict, str], str] = prompt_completion_tests
    prompt: Callable[[dict], str] = row_prompt
    build_for: Callable[[str], Build] | None = None  # source -> a variant build (e.g. extra link flags)

    def build_of(self, source: str) -> Build:
        return self.build_for(source) if self.build_for else self.build


@dataclass(frozen=True)
class Language:
    name: str
    tools: dict[str, Tool]
    memory: Literal["as", "data"] = "as"  # see Program.memory
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[dict[str, str]], dict[str, str]] | None = None  # resolved tools -> extra env (once)

    def check(self, build: Build) -> dict[str, str]:
        """The absolute path of every tool ``build`` uses; ToolchainMissing naming what to install."""
        used = [a[1:] for a in (*(build.compile or ()), *build.run) if a.startswith("$")]
        paths = {}
        for name in dict.fromkeys(used):
            tool = self.tools[name]
            path = _which(tool.command)
            if path is None:
                raise ToolchainMissing(f"{self.name}: `{tool.command}` is not installed (not on PATH); "
                                       f"install it with: {tool.install}")
            paths[name] = tool.resolve(path) if tool.resolve else path
        for path, install in build.needs:
            if not os.path.exists(path):
                raise ToolchainMissing(f"{self.name}: {path} is missing; install it with: {install}")
        return paths

    def program(self, source: str, build: Build) -> Program:
        """``source`` as a sandbox Program built and run the way ``build`` says."""
        paths = _checked(self, build)

        def argv(cmd):
            return tuple(paths[a[1:]] if a.startswith("$") else a for a in cmd)

        env = {**self.env, **(_prepared(self, tuple(sorted(paths.items()))) if self.prepare else {})}
        return Program(files=((build.file_name, source),), run=argv(build.run),
                       compile=argv(build.compile) if build.compile else None,
                       env=tuple(sorted(env.items())), memory=self.memory, language=self.name)


@functools.lru_cache(maxsize=None)
def _which(command: str) -> str | None:
    return shutil.which(command)


_CHECKED: dict = {}


def _checked(lang: Language, build: Build) -> dict[str, str]:
    """:meth:`Language.check`, once per process and build (every sample of a run shares it)."""
    key = (lang.name, build)
    if key not in _CHECKED:
        _CHECKED[key] = lang.check(build)
    return _CHECKED[key]


_PREPARED: dict = {}


def _prepared(lang: Language, tools: tuple) -> dict[str, str]:
    if (lang.name, tools) not in _PREPARED:
        _PREPARED[(lang.name, tools)] = lang.prepare(dict(tools))
    return _PREPARED[(lang.name, tools)]


def fenced_code(completion: str) -> str | None:
    """The first fenced code block of a chat response (None when there is none)."""
    start = completion.find("```")
    if start < 0:
        return None
    body = completion[start + 3:]
    body = body[body.find("\n") + 1:] if "\n" in body else ""
    end = body.find("```")
    return body if end < 0 else body[:end]


def continuation(prompt: str, completion: str, stops: list[str] | tuple[str, ...] = ()) -> str:
    """The part of ``completion`` that continues ``prompt``: a base model's text cut at the first stop
    sequence; for a chat response with a fenced block, the block after the prompt's last line (the
    signature) when it repeats it, else the whole block."""
    code = fenced_code(completion)
    if code is None:
        cut = min((i for i in (completion.find(s) for s in stops) if i >= 0), default=len(completion))
        return completion[:cut]
    last = next((ln.strip() for ln in reversed(prompt.splitlines()) if ln.strip()), "")
    at = code.find(last) if last else -1
    return code[at + len(last):] if at >= 0 else code
