"""PHP (php-cli): MultiPL-E only; ``php -l`` first (a syntax error is a compile error, status error),
then ``php main.php`` (its tests throw; an uncaught exception exits 255)."""
from __future__ import annotations

from domainspec.eval.languages.base import Build, Format, Language, Tool

LANGUAGE = Language("php", tools={"php": Tool("php", "apt-get install php-cli")})
MULTIPL_E = Format("php", Build("main.php", compile=("$php", "-l", "main.php"), run=("$php", "main.php")), stops=("\nfunction", "\n?>", "\n//", "\n#"))
HUMANEVAL_X = None
