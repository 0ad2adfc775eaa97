"""C++ (g++): HumanEval-X and MultiPL-E programs, compiled with ``-std=c++17``, run as ``./prog``.

HumanEval-X assembly: the standard headers the prompt lacks (its solutions use e.g. ``<algorithm>``
without including it, as the CodeGeeX evaluator's header list allows), then prompt + completion +
test. A program that includes ``<openssl/...>`` (CPP/162, md5) links ``-lcrypto`` (apt ``libssl-dev``).
"""
from __future__ import annotations

from dataclasses import replace

from domainspec.eval.languages.base import Build, Format, Language, Tool

LANGUAGE = Language("cpp", tools={"g++": Tool("g++", "apt-get install g++")})

BUILD = Build("main.cpp", compile=("$g++", "-std=c++17", "-o", "prog", "main.cpp"), run=("./prog",))
OPENSSL_BUILD = replace(BUILD, compile=(*BUILD.compile, "-lcrypto"),
                        needs=(("/usr/include/openssl/md5.h", "apt-get install libssl-dev"),))

HEADERS = ("<math.h>", "<stdio.h>", "<stdlib.h>", "<string.h>", "<string>", "<vector>", "<algorithm>",
           "<map>", "<set>", "<climits>", "<cstdlib>", "<iostream>", "<sstream>", "<numeric>", "<cmath>")


def humaneval_x(row: dict, completion: str) -> str:
    missing = "".join(f"#include{h}\n" for h in HEADERS if h not in row["prompt"])
    return missing + "\n" + row["prompt"] + completion + "\n" + row["test"]


HUMANEVAL_X = Format("cpp", BUILD, stops=("\nint main", "\n#include", "\n/*", "\n//", "\nusing namespace"),
                     assemble=humaneval_x, build_for=lambda src: OPENSSL_BUILD if "<openssl/" in src else BUILD)
MULTIPL_E = Format("cpp", BUILD, stops=("\n}",))
