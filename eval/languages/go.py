"""Go: HumanEval-X (package main, testify's ``assert``) and MultiPL-E (a ``*_test`` package), both
compiled with ``go test -c`` and the test binary run.

HumanEval-X assembly (the CodeGeeX evaluator's rule, restated): the package clause, then ONE import
block with the test setup's imports and those packages - the task's own imports and common standard
ones - whose name the completion uses (``strings.``): Go refuses missing, unused and duplicate
imports alike (Go/27's prompt imports "strings", its solution does not use it), then the prompt
without its import block, the completion and the test. testify comes from Debian's
``golang-github-stretchr-testify-dev`` in GOPATH mode (no module download in the sandbox).

Build cache: a cold ``go test -c`` rebuilds testing, fmt and testify (~7 s here); warm, ~0.4 s.
The first Go program of a process builds a cache of those packages once per machine (trusted code
only, under ``$DOMAINSPEC_CACHE``); programs use it read-only (``GOCACHE``; Go compiles what is
missing in the program's own directory). Where the sandbox cannot give programs a uid of their own
(not root) and below bwrap, a program could write into that cache; see the sandbox's limits.
"""
from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile

from domainspec.eval.languages.base import Build, Format, Language, Tool

log = logging.getLogger(__name__)

GOPATH_SHARE = "/usr/share/gocode"
TESTIFY = f"{GOPATH_SHARE}/src/github.com/stretchr/testify/assert"
# standard packages a completion may use without importing them; also what the warm cache holds
HELPER_PACKAGES = ("math", "strings", "strconv", "sort", "fmt", "bytes", "unicode", "regexp", "math/rand",
                   "time", "crypto/md5", "encoding/hex", "reflect", "container/heap", "math/big", "errors")
WARM_IMPORTS = ("testing", *HELPER_PACKAGES, "github.com/stretchr/testify/assert")
ENV = {"GO111MODULE": "off", "GOPATH": f"{{dir}}/go:{GOPATH_SHARE}", "CGO_ENABLED": "0", "GOFLAGS": "-p=1",
       "GOTOOLCHAIN": "local"}


def warm_cache(tools: dict[str, str]) -> dict[str, str]:
    """Build (once per machine and Go version) the read-only build cache programs start from."""
    from domainspec.common.artifacts import content_hash
    from domainspec.common.models.loading import cache_dir

    go = tools["go"]
    version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=60).stdout.strip()
    path = cache_dir() / f"go-build-{content_hash({'go': version, 'imports': WARM_IMPORTS})}"
    if not (path / "warm.ok").is_file():
        log.info("go: building the shared build cache %s (once per machine)", path)
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as work:
            uses = "\n".join(f'\t_ "{p}"' for p in WARM_IMPORTS if p != "testing")
            src = f'package main\n\nimport (\n\t"testing"\n{uses}\n)\n\nfunc TestWarm(t *testing.T) {{}}\n'
            with open(os.path.join(work, "main_test.go"), "w") as f:
                f.write(src)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, "GOCACHE": str(path),
                   **{k: v.replace("{dir}", work) for k, v in ENV.items()}}
            r = subprocess.run([go, "test", "-c", "-o", os.devnull, "main_test.go"], cwd=work, env=env,
                               capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            log.warning("go: warming the build cache failed (programs compile from scratch): %s",
                        (r.stderr.strip().splitlines() or ["?"])[-1])
            return {}
        (path / "warm.ok").write_text(version + "\n")
    return {"GOCACHE": str(path)}


LANGUAGE = Language("go", memory="data", env=ENV, prepare=warm_cache,
                    tools={"go": Tool("go", "apt-get install golang-go")})

BUILD = Build("main_test.go", compile=("$go", "test", "-c", "-o", "prog.test", "main_test.go"),
              run=("./prog.test", "-test.count=1"))
HUMANEVAL_X_BUILD = Build(BUILD.file_name, compile=BUILD.compile, run=BUILD.run,
                          needs=((TESTIFY, "apt-get install golang-github-stretchr-testify-dev"),))

_IMPORT_BLOCK = re.compile(r"^import\s*\((.*?)\)\s*$|^import\s+(\"[^\"]+\")\s*$", re.S | re.M)


def imports(text: str) -> list[str]:
    """Import paths of ``text``'s import declarations, in order."""
    out = []
    for block, single in _IMPORT_BLOCK.findall(text):
        out += re.findall(r'"([^"]+)"', block or single)
    return out


def humaneval_x(row: dict, completion: str) -> str:
    setup = row.get("test_setup") or "package main\n"
    prompt = row["prompt"].replace(row.get("import") or "\0", "")
    prompt = _IMPORT_BLOCK.sub("", prompt)
    optional = imports(row.get("import") or "") + imports(row["prompt"]) + list(HELPER_PACKAGES)
    paths = imports(setup) + [p for p in optional if f"{p.rsplit('/', 1)[-1]}." in completion]
    block = "".join(f'    "{p}"\n' for p in dict.fromkeys(paths))
    package = re.search(r"^package\s+\w+", setup, re.M)
    head = package.group(0) if package else "package main"
    return f"{head}\n\nimport (\n{block})\n\n{prompt.lstrip()}{completion}\n{row['test']}"


HUMANEVAL_X = Format("go", HUMANEVAL_X_BUILD, stops=("\nfunc Test", "\nfunc main", "\n// ", "\npackage "),
                     assemble=humaneval_x)
MULTIPL_E = Format("go", BUILD, stops=("\nfunc", "struct", "\n// "))
