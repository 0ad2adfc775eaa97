"""JavaScript (node): ``node main.js``; memory limit as RLIMIT_DATA (V8 reserves large address ranges).

HumanEval-X's tests use ``console.assert``, which only prints; its evaluator fails a program that
prints anything. Here pass means exit status 0, so the assembled program starts with a prelude that
makes a failed ``console.assert`` set a non-zero exit status (the message is still printed).
MultiPL-E's tests use ``node:assert``, which throws.
"""
from __future__ import annotations

from domainspec.eval.languages.base import Build, Format, Language, Tool

LANGUAGE = Language("js", memory="data", tools={"node": Tool("node", "apt-get install nodejs")})
# `node --check` first: a syntax error is a compile error (status error), as SyntaxError is for Python
BUILD = Build("main.js", compile=("$node", "--check", "main.js"), run=("$node", "main.js"))

ASSERT_PRELUDE = ("{ const report = console.assert.bind(console);\n"
                  "  console.assert = (ok, ...msg) => { if (!ok) process.exitCode = 1; report(ok, ...msg); }; }\n")


def humaneval_x(row: dict, completion: str) -> str:
    return ASSERT_PRELUDE + row["prompt"] + completion + "\n" + row["test"]


HUMANEVAL_X = Format("js", BUILD, stops=("\nconst test", "\nconsole.", "\n/*", "\n//", "\nfunction "),
                     assemble=humaneval_x)
MULTIPL_E = Format("js", BUILD, stops=("\nfunction ", "\n/*", "\n//", "\nconsole.log"))
