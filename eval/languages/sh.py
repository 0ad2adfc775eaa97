"""Bash: MultiPL-E only; ``bash -n`` first (a syntax error is a compile error, status error), then
``bash main.sh`` (its tests ``set -e``, so a failed check exits non-zero)."""
from __future__ import annotations

from domainspec.eval.languages.base import Build, Format, Language, Tool

LANGUAGE = Language("sh", tools={"bash": Tool("bash", "apt-get install bash")})
MULTIPL_E = Format("sh", Build("main.sh", compile=("$bash", "-n", "main.sh"), run=("$bash", "main.sh")), stops=("\n}",))
HUMANEVAL_X = None
