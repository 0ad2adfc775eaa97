"""GSM8K (Cobbe et al. 2021): grade-school word problems, scored by final-answer equivalence.

Usage::

    from domainspec.eval.benchmarks.gsm8k import GSM8K
    tasks = GSM8K.load("../shared/data/gsm8k/test.jsonl")   # 1319 rows; or "openai/gsm8k:main"
    GSM8K.gold(tasks[0])                                     # the number after '####' (gsm8k_gold)

Rows are ``{"question", "answer"}`` where ``answer`` is the worked solution
ending in ``#### <number>``; :func:`gsm8k_gold` is the gold rule (rejection sampling uses
it for GSM8K-format problem files too). Answers are extracted and compared by the shared
:class:`domainspec.eval.grader.math_grader.MathGrader` (scoring owns the one grader).

``dollar_is_currency = True``: replies are extracted with ``extract_final(reply, currency=True)``
(``eval/grader/extract.py``), whose rules, one form each, are:
- ``<<2*9=18>>`` calculator annotation: deleted, never the answer;
- ``$2``, ``$ 1,000``, ``-$5``, ``18$``, ``\\$18``: a currency sign, deleted (opens no math);
  ``$9 \\times 2 = 18$`` (closed on its line, no words inside) stays inline math;
- ``\\boxed{18}`` / ``\\boxed{\\$18}``: the last box's content;
- ``#### 18``: what follows ``####``;
- ``A: 18`` / ``Answer: 18`` / ``**Answer:** $18`` line, "The (final) answer is 18.": the
  sentence after the later of the last such line and the last such phrase (one holding a digit);
- no marker: the last number of the reply, or the inline math it stands in (``$x = 9$``);
- ``18 dollars``, ``18 km/h``, ``**18**``, ``2 * 9 = 18``, ``18%``: the number (after the last
  ``=``; ``%`` kept); ``1,234`` and ``18.00`` are left to the normalizer / ``is_equiv``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from domainspec.eval.benchmarks.base import Task, apply_limit, field_texts
from domainspec.eval.benchmarks.cot import CoTMathBenchmark
from domainspec.eval.datafiles import EvalDataError, load_rows, require, unique_ids


def gsm8k_gold(answer_field: str) -> str:
    """The number after ``####`` in a GSM8K answer field, thousands separators removed."""
    m = re.search(r"####\s*(.+?)\s*$", answer_field.strip())
    if not m:
        raise ValueError(f"GSM8K answer field has no '#### <number>' line: {answer_field[-80:]!r}")
    return m.group(1).replace(",", "").strip()


class GSM8KBenchmark(CoTMathBenchmark):
    name = "gsm8k"
    version = "gsm8k-1.0"
    hub_name = "openai/gsm8k:main"
    dollar_is_currency = True  # "$18" is money: extract with extract_final(reply, currency=True)

    def load(self, path: str | None = None, limit: int | None = None, split: str | None = None) -> list[Task]:
        source = path or self.hub_name
        rows = load_rows(source, split=split or "test")
        if not rows:
            raise EvalDataError(f"{source}: no GSM8K rows")
        tasks = []
        for tid, (where, row) in zip(unique_ids(rows), rows):
            require(row, where, ("question", "answer"), {"question": str, "answer": str})
            if "####" not in row["answer"]:
                raise EvalDataError(f"{where}: 'answer' has no '#### <number>' final line")
            tasks.append(Task(task_id=tid, prompt=row["question"], data=row))
        return apply_limit(tasks, limit)

    def gold(self, task: Task) -> str:
        return gsm8k_gold(task.data["answer"])

    def breakdown(self, task: Task) -> dict:
        return {}

    def local_copy(self, data_dir: Path) -> Path:
        return data_dir / "gsm8k" / "test.jsonl"

    def decontamination_texts(self, path: Path) -> Iterator[tuple[str, str]]:
        return field_texts(path, ("question", "answer"))


GSM8K = GSM8KBenchmark()
