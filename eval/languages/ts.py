"""TypeScript (tsc + node): MultiPL-E only (HumanEval-X has no TypeScript). ``tsc`` compiles
``main.ts`` to ``main.js`` (a type error is a compile error, as in MultiPL-E's harness); node runs it.
TypeScript 7's ``tsc`` is a Go program, so the limit is on RLIMIT_DATA as for node.
"""
from __future__ import annotations

from domainspec.eval.languages.base import Build, Format, Language, Tool

LANGUAGE = Language("ts", memory="data", tools={
    "tsc": Tool("tsc", "npm install -g typescript"),
    "node": Tool("node", "apt-get install nodejs")})
BUILD = Build("main.ts", compile=("$tsc", "--target", "esnext", "--module", "commonjs", "--strict", "false",
                                  "main.ts"),
              run=("$node", "main.js"))
MULTIPL_E = Format("ts", BUILD, stops=("\nfunction ", "\n/*", "\n//", "\nclass"))
HUMANEVAL_X = None
