"""HumanEval-X (CodeGeeX, Zheng et al. 2023) and MultiPL-E (Cassano et al. 2023): HumanEval in other
languages, scored by compiling and running each program in the sandbox (pass = exit status 0).

Usage::

    from domainspec.eval.benchmarks.registry import get_benchmark
    bench = get_benchmark("multipl-e-rs")                    # or humaneval-x-cpp, multipl-e-ts, ...
    tasks = bench.load()                                     # ../shared/data/multilingual/... by default
    program = bench.program(tasks[0], completion)            # a sandbox Program (files + compile + run)

One registered benchmark per (format, language): ``humaneval-x-{cpp,go,java,js,rust}`` and
``multipl-e-{cpp,go,java,js,php,rs,sh,ts}``, so every score (and its report) is one language's
pass@k. How each language builds, runs and assembles its programs is data in its module under
:mod:`domainspec.eval.languages`. HumanEval-X rows carry canonical solutions
(``reference_completion``, used to calibrate time limits); MultiPL-E rows do not. A benchmark whose
toolchain is missing raises :class:`~domainspec.eval.languages.base.ToolchainMissing` naming what
to install when it is loaded. This module runs nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from domainspec.eval.benchmarks.base import Kind, Style, Task, apply_limit, field_texts
from domainspec.eval.datafiles import EvalDataError, load_rows, require, unique_ids
from domainspec.eval.languages import language_module
from domainspec.eval.languages.base import continuation

log = logging.getLogger(__name__)

CHAT_INSTRUCTION = ("Complete the following {language} code. Reply with the completed code in one fenced "
                    "code block.")
LANGUAGE_NAMES = {"cpp": "C++", "java": "Java", "js": "JavaScript", "ts": "TypeScript", "rust": "Rust", "go": "Go",
                  "sh": "Bash", "php": "PHP"}


class _Multilingual:
    kind = Kind.CODE
    fmt_attr: str  # HUMANEVAL_X or MULTIPL_E in the language module
    folder: str
    fields: tuple[str, ...]
    text_fields: tuple[str, ...]

    def __init__(self, language: str):
        module = language_module(language)
        self.language = module.LANGUAGE
        self.format = getattr(module, self.fmt_attr)
        if self.format is None:
            raise ValueError(f"{self.folder}: no {language} format")
        self.name = f"{self.folder}-{self.format.data_code}"

    def local_copy(self, data_dir: Path) -> Path:
        return data_dir / "multilingual" / self.folder / self.file_name

    def default_source(self) -> str:
        from domainspec.eval.benchmarks.decontamination import default_data_dir  # imports the registry

        return str(self.local_copy(default_data_dir()))

    def check_toolchain(self) -> None:
        """Raise ToolchainMissing (naming what to install) unless every tool this benchmark needs is here."""
        self.language.check(self.format.build)

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        self.check_toolchain()
        source = path or self.default_source()
        rows = load_rows(source, split=split or "test")
        if not rows:
            raise EvalDataError(f"{source}: no {self.name} problems")
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            require(row, where, self.fields, {f: str for f in self.fields})
            self._check_row(where, row)
            tasks.append(Task(task_id=tid, prompt=self.format.prompt(row), data=row))
        return apply_limit(tasks, limit)

    def _check_row(self, where: str, row: dict) -> None:
        pass

    def prompt(self, task: Task, style: Style = "base") -> str | list[dict]:
        if style == "base":
            return task.prompt
        if style == "chat":
            lang = LANGUAGE_NAMES[self.language.name]
            fence = self.format.build.file_name.rsplit(".", 1)[-1]
            return [{"role": "user", "content": f"{CHAT_INSTRUCTION.format(language=lang)}\n\n"
                                                f"```{fence}\n{task.prompt}```"}]
        raise ValueError(f"style must be 'base' or 'chat', got {style!r}")

    def stop_sequences(self, style: Style = "base") -> list[str]:
        return list(self.format.stops) if style == "base" else []

    def protocol(self, style: Style | None = None) -> str:
        return {
            "base": f"{self.name}-base: 0-shot continuation of the prompt, stop at {list(self.format.stops)}",
            "chat": f"{self.name}-chat: 0-shot chat request, code taken from the first fenced block",
        }.get(style or "", f"{self.name}: completions as given (generation protocol not recorded in the samples)")

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        return field_texts(path, self.text_fields)

    def breakdown(self, task: Task) -> dict:
        """The language, so a report over several of these benchmarks can group by it."""
        return {"language": self.language.name}

    def program(self, task: Task, completion: str):
        """The task's program in the sandbox's typed form: assembled source, build and run commands."""
        code = continuation(task.prompt, completion, self.format.stops)
        source = self.format.assemble(task.data, code)
        return self.language.program(source, self.format.build_of(source))


class HumanEvalX(_Multilingual):
    """HumanEval-X: ``task_id, prompt, declaration, canonical_solution, test`` (+ ``import, test_setup`` for Go)."""

    version = "humaneval-x-1.0"
    fmt_attr = "HUMANEVAL_X"
    folder = "humaneval-x"
    fields = ("prompt", "declaration", "test")
    text_fields = ("prompt", "canonical_solution", "test")

    @property
    def file_name(self) -> str:
        return f"humaneval_{self.format.data_code}.jsonl.gz"

    def reference_completion(self, task: Task) -> str | None:
        ref = task.data.get("canonical_solution")
        return ref if isinstance(ref, str) and ref.strip() else None


class MultiPLE(_Multilingual):
    """MultiPL-E's HumanEval translations: ``name, language, prompt, tests, stop_tokens``; no solutions."""

    version = "multipl-e-1.0"
    fmt_attr = "MULTIPL_E"
    folder = "multipl-e"
    fields = ("prompt", "tests")
    text_fields = ("prompt", "tests")
    _warned = False

    @property
    def file_name(self) -> str:
        return f"humaneval-{self.format.data_code}.jsonl.gz"

    def _check_row(self, where: str, row: dict) -> None:
        stops = row.get("stop_tokens")
        if stops is not None and list(stops) != list(self.format.stops) and not self._warned:
            self._warned = True
            log.warning("%s: %s: the row's stop_tokens %r differ from this benchmark's %r (used for generation)",
                        self.name, where, stops, list(self.format.stops))


HUMANEVAL_X = {b.name: b for b in (HumanEvalX(lang) for lang in ("cpp", "go", "java", "js", "rust"))}
MULTIPL_E = {b.name: b for b in (MultiPLE(lang) for lang in ("cpp", "go", "java", "js", "php", "rust", "sh", "ts"))}
HUMANEVAL_X_CPP, HUMANEVAL_X_GO, HUMANEVAL_X_JAVA, HUMANEVAL_X_JS, HUMANEVAL_X_RUST = HUMANEVAL_X.values()
(MULTIPL_E_CPP, MULTIPL_E_GO, MULTIPL_E_JAVA, MULTIPL_E_JS, MULTIPL_E_PHP, MULTIPL_E_RS, MULTIPL_E_SH,
 MULTIPL_E_TS) = MULTIPL_E.values()

