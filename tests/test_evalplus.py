"""HumanEval+ / MBPP+: differential testing against the canonical solution's outputs, in the one sandbox.

Known answers on the release files (canonical solutions pass base and plus, `pass` bodies score 0),
table cases on small EvalPlus-format files (wrong outputs, float tolerance, large outputs kept as
digests, special oracles, MBPP+ input types), the reference-output cache, loader errors, the report.
"""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from data_helpers import needs_shared_data, shared_data

from domainspec.common.sandbox.pool import Sandbox, SandboxConfig
from domainspec.eval.benchmarks import evalplus_runner as runner
from domainspec.eval.benchmarks.evalplus import HUMANEVAL_PLUS, MBPP_PLUS, restore_input
from domainspec.eval.benchmarks.registry import benchmark_names
from domainspec.eval.datafiles import EvalDataError
from domainspec.eval.scoring import score_samples

HE_FILE = "evalplus/HumanEvalPlus-v0.1.10.jsonl.gz"
MBPP_FILE = "evalplus/MbppPlus-v0.2.0.jsonl.gz"


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINSPEC_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=2)) as sb:
        yield sb


def row(task_id, prompt, solution, base, plus, entry, atol=0):
    return {"task_id": task_id, "prompt": prompt, "entry_point": entry, "canonical_solution": solution,
            "base_input": base, "plus_input": plus, "atol": atol, "contract": "", "test": ""}


SYNTHETIC = [
    row("Syn/0", "def scale(x):\n    \"\"\"x tenths.\"\"\"\n", "    return x * 0.1\n", [[1], [2]], [[3], [7]], "scale"),
    row("Syn/1", "def add(a, b):\n", "    return a + b\n", [[1, 2]], [[10 ** 6, 1], [-5, 5]], "add"),
    row("Syn/2", "def root(x):\n", "    return x ** 0.5\n", [[4.0]], [[2.0]], "root", atol=1e-3),
    row("Syn/3", "def upto(n):\n", "    return list(range(n))\n", [[3]], [[2000]], "upto"),
    row("Syn/4", "def spell(n):\n", "    return ' '.join(map(str, range(n)))\n", [[3]], [[1000]], "spell"),
]

# (task, completion, passed = base and plus, base_passed, status)
CASES = [
    ("Syn/0", "    return x * 0.1\n", True, True, "passed"),
    ("Syn/0", "    return x / 10\n", True, True, "passed"),  # 0.3 vs 0.30000000000000004: floats get 1e-6
    ("Syn/0", "    return x * 0.1 + 1e-5\n", False, False, "failed"),  # over the default float tolerance
    ("Syn/0", "    return str(x * 0.1)\n", False, False, "failed"),  # the type differs
    ("Syn/0", "Here it is:\n```python\ndef scale(x):\n    return x * 0.1\n```\n", True, True, "passed"),
    ("Syn/1", "    return a - b\n", False, False, "failed"),  # a wrong output on a base input
    ("Syn/1", "    return a + b if a < 100 else 0\n", False, True, "failed"),  # right on base, wrong on plus
    ("Syn/1", "    pass\n", False, False, "failed"),
    ("Syn/1", "    while a > 100:\n        pass\n    return a + b\n", False, True, "timeout"),  # loops on plus
    ("Syn/1", "    return a +\n", False, False, "error"),  # does not compile
    ("Syn/2", "    return x ** 0.5 + 5e-4\n", True, True, "passed"),  # within the task's atol 1e-3
    ("Syn/2", "    return x ** 0.5 + 5e-3\n", False, False, "failed"),
    ("Syn/2", "    return int(x ** 0.5)\n", False, True, "failed"),  # 2 == 2.0 on base; 1 != 1.414 on plus
    ("Syn/3", "    return [float(i) for i in range(n)]\n", True, True, "passed"),  # recomputed; 1.0 == 1
    ("Syn/3", "    return tuple(range(n))\n", False, False, "failed"),  # a tuple is not a list
    ("Syn/3", "    return list(range(n)) if n < 100 else list(range(n - 1)) + [0]\n", False, True, "failed"),
    ("Syn/4", "    return ' '.join(str(i) for i in range(n))\n", True, True, "passed"),  # a large str: its sha256
    ("Syn/4", "    return ' '.join(map(str, range(n))) + ('' if n < 100 else ' ')\n", False, True, "failed"),
    ("Syn/4", "    return ' '.join(map(str, range(n))).split() if n > 100 else '0 1 2'\n", False, True, "failed"),
]


def write_gz(path: Path, rows) -> Path:
    with gzip.open(path, "wt") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_registered():
    assert {"humaneval_plus", "mbpp_plus"} <= set(benchmark_names("code"))


def test_table_cases_through_the_sandbox(tmp_path, sandbox):
    tasks = HUMANEVAL_PLUS.load(str(write_gz(tmp_path / "syn.jsonl.gz", SYNTHETIC)))
    samples = [{"task_id": t, "completion": c} for t, c, *_ in CASES]
    scored = score_samples(HUMANEVAL_PLUS, tasks, samples, sandbox=sandbox)
    got = [(r.task_id, r.passed, r.base_passed, r.status.value) for r in scored.results]
    assert got == [(t, p, b, s) for t, _, p, b, s in CASES]
    row0 = scored.results[6].to_row()
    assert row0["base_passed"] is True and row0["base_status"] == "passed" and row0["passed"] is False
    assert "plus input 0: wrong output" in row0["detail"]
    limits = scored.summary["sandbox"]
    assert limits["time_limit"] == "per-input" and limits["limit_floor_s"] == 1.0


def test_large_expected_outputs_are_not_kept_as_values(tmp_path, sandbox):
    from domainspec.eval.benchmarks.evalplus_programs import reference_runs

    tasks = HUMANEVAL_PLUS.load(str(write_gz(tmp_path / "syn.jsonl.gz", SYNTHETIC[3:])))
    refs, _ = reference_runs(sandbox, tasks, sandbox.config)
    lists, text = refs["Syn/3"], refs["Syn/4"]
    assert runner.unpack(lists.entries["base"]) == [("v", [0, 1, 2])]
    assert runner.unpack(lists.entries["plus"]) == [("r",)] and lists.recompute == {"base": [], "plus": [0]}
    assert runner.unpack(text.entries["plus"]) == [("s", runner.text_digest(" ".join(map(str, range(1000)))))]
    assert max(len(e) for r in (lists, text) for e in r.entries.values()) < 200


def test_kept_values_fit_the_reference_line():
    import hashlib

    noise = [hashlib.sha256(str(i).encode()).hexdigest() * 2 for i in range(400)]  # 128 characters that hardly compress
    values = [10 ** 2000, "x" * 600, list(range(50))] + noise
    kept = [runner.expected_entry(v, None) for v in values]
    assert [e[0] for e, _ in kept[:3]] == ["r", "s", "v"]  # a huge int is not small, whatever its length
    entries, sizes = [e for e, _ in kept], [n for _, n in kept]
    assert runner.fit(list(entries), sizes, None, budget=10 ** 6) == runner.pack(entries)  # fits: unchanged
    packed = runner.fit(entries, sizes, None, budget=4000)
    assert len(packed) <= 4000 and runner.unpack(packed) == entries
    kinds = [e[0] for e in entries]
    assert "s" in kinds[3:] and "r" in kinds[3:]  # values became digests, then some digests recomputed entries


@pytest.mark.parametrize("out, exp, atol, oracle, ok", [
    (0.30000000000000004, 0.3, 0, None, True),  # floats: 1e-6 when the task has no atol
    (0.3001, 0.3, 0, None, False),
    ([0.1, 0.2], [0.1, 0.2000001], 0, None, True),
    ([0.1, 0.2], (0.1, 0.2), 0, None, False),  # the same type is required for a tolerant match
    (2.05, 2.0, 0.1, None, True),
    ((3, 4), (4, 3), 0, "set_equal", True),
    ("match", True, 0, "not_none", True),
    (None, True, 0, "not_none", False),
    (-0.5, None, 1e-4, "polynomial_root", True),  # find_zero: |poly([1, 2], out)| <= atol
])
def test_comparison_rules(out, exp, atol, oracle, ok):
    inp = [[1, 2]] if oracle == "polynomial_root" else [[1]]
    assert runner.matches(out, ("v", exp), inp, atol, oracle) is ok


def test_mbpp_plus_inputs_get_evalplus_types():
    assert restore_input("args_to_tuples", [[3, 4], [5]]) == [(3, 4), (5,)]
    assert restore_input("first_to_list_of_sets", [[[1, 2], []]]) == [[{1, 2}, {}]]  # EvalPlus: [] -> {} (a dict)
    assert restore_input("float_and_complex", [3, "(1+2j)"]) == [3.0, 1 + 2j]
    assert restore_input("all_to_tuples", [[[1, [2]], 3]]) == [((1, (2,)), 3)]
    assert restore_input(None, [[1]]) == [[1]]


def test_mbpp_plus_set_oracle_and_tuple_inputs(tmp_path, sandbox):
    mbpp = [row("Mbpp/2", '"""\nShared elements.\n"""\n', "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
                [[[3, 4, 5, 6], [5, 7, 4, 10]]], [[[1, 2, 3], [3, 2]]], "similar_elements")]
    tasks = MBPP_PLUS.load(str(write_gz(tmp_path / "mbpp.jsonl.gz", mbpp)))
    samples = [{"task_id": "Mbpp/2", "completion": c} for c in (
        "def similar_elements(a, b):\n    assert isinstance(a, tuple)\n    return tuple(set(a) & set(b))\n",
        "```python\ndef similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n```",
        "def similar_elements(a, b):\n    return (a[0],)\n")]
    scored = score_samples(MBPP_PLUS, tasks, samples, sandbox=sandbox)
    assert [r.passed for r in scored.results] == [True, True, False]


def test_reference_outputs_are_cached_and_recomputed_when_inputs_change(tmp_path, sandbox):
    path = write_gz(tmp_path / "syn.jsonl.gz", SYNTHETIC[:2])
    samples = [{"task_id": "Syn/0", "completion": "    return x * 0.1\n"}, {"task_id": "Syn/1", "completion": "    pass\n"}]

    def run(p):
        return score_samples(HUMANEVAL_PLUS, HUMANEVAL_PLUS.load(str(p)), samples, sandbox=sandbox).summary

    first, second = run(path), run(path)
    assert (first["sandbox"]["reference_outputs"]["computed"], second["sandbox"]["reference_outputs"]["cached"]) == (2, 2)
    assert second["sandbox"]["reference_outputs"]["computed"] == 0
    assert second["metrics"] == first["metrics"]
    changed = [dict(SYNTHETIC[0], plus_input=[[3], [8]]), SYNTHETIC[1]]
    third = run(write_gz(tmp_path / "changed.jsonl.gz", changed))
    assert (third["sandbox"]["reference_outputs"]["computed"], third["sandbox"]["reference_outputs"]["cached"]) == (1, 1)


def test_report_gives_base_and_plus_side_by_side(tmp_path):
    from domainspec.eval.scoring import score

    data = write_gz(tmp_path / "syn.jsonl.gz", SYNTHETIC[1:2])
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": "Syn/1", "completion": c}) + "\n" for c in (
        "    return a + b\n", "    return a + b if a < 100 else 0\n", "    pass\n", "    return a + b\n")))
    summary = score("humaneval_plus", samples, tmp_path / "out", data_path=str(data), ks=(1, 2),
                    sandbox_config=SandboxConfig(workers=1), progress=False)
    assert summary["metrics"]["pass@1"] == 0.5 and summary["metrics"]["base_pass@1"] == 0.75
    assert summary["metrics"]["pass@2"] == pytest.approx(1 - 1 / 6) and summary["metrics"]["base_pass@2"] == 1.0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| k | base | base + plus |" in report
    assert "| 1 | 0.7500 | 0.5000 |" in report  # one task: no standard error
    rows = [json.loads(ln) for ln in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [(r["passed"], r["base_passed"]) for r in rows] == [(True, True), (False, True), (False, False), (True, True)]


def test_a_failing_canonical_solution_is_an_error_naming_the_task(tmp_path, sandbox):
    bad = [row("Syn/9", "def f(x):\n", "    return 1 / x\n", [[1]], [[0]], "f")]
    tasks = HUMANEVAL_PLUS.load(str(write_gz(tmp_path / "bad.jsonl.gz", bad)))
    with pytest.raises(EvalDataError, match=r"canonical solution of Syn/9 .*ZeroDivisionError"):
        score_samples(HUMANEVAL_PLUS, tasks, [{"task_id": "Syn/9", "completion": "    pass\n"}], sandbox=sandbox)


def test_bad_rows_name_file_line_and_field(tmp_path):
    broken = dict(SYNTHETIC[0])
    del broken["plus_input"]
    path = write_gz(tmp_path / "b.jsonl.gz", [SYNTHETIC[1], broken])
    with pytest.raises(EvalDataError, match=r"b\.jsonl\.gz:2: missing field\(s\) 'plus_input'"):
        HUMANEVAL_PLUS.load(str(path))
    shape = [row("Mbpp/2", "", "def f(a, b):\n    pass\n", [[1, 2]], [], "f")]  # ints where tuples are rebuilt
    with pytest.raises(EvalDataError, match=r"m\.jsonl\.gz:1: base_input does not have the shape of input rule"):
        MBPP_PLUS.load(str(write_gz(tmp_path / "m.jsonl.gz", shape)))
    with pytest.raises(EvalDataError, match="one split"):
        HUMANEVAL_PLUS.load(str(path), split="train")


def test_program_needs_prepare(tmp_path):
    task = HUMANEVAL_PLUS.load(str(write_gz(tmp_path / "s.jsonl.gz", SYNTHETIC[:1])))[0]
    with pytest.raises(RuntimeError, match="call prepare"):
        HUMANEVAL_PLUS.program(task, "    pass\n")


def test_prompts_follow_evalplus():
    from domainspec.eval.benchmarks.base import Task

    t = Task("Mbpp/2", '"""\nWrite a function.\nassert f(1) == 1\n"""\n')
    assert MBPP_PLUS.prompt(t, "base") == t.prompt
    assert '\n"""' in MBPP_PLUS.stop_sequences("base") and "\nassert" in MBPP_PLUS.stop_sequences("base")
    chat = MBPP_PLUS.prompt(t, "chat")[0]["content"]
    assert chat.startswith("Please provide a self-contained Python script") and "```\n\"\"\"\nWrite a function." in chat
    assert HUMANEVAL_PLUS.stop_sequences("chat") == [] and "\ndef " in HUMANEVAL_PLUS.stop_sequences("base")


def canonical_and_pass(bench, tasks):
    stub = "    pass\n" if bench is HUMANEVAL_PLUS else None
    samples = [{"task_id": t.task_id, "completion": bench.reference_completion(t)} for t in tasks]
    samples += [{"task_id": t.task_id, "completion": stub or f"def {t.data['entry_point']}(*args, **kwargs):\n    pass\n"}
                for t in tasks]
    return samples


@needs_shared_data(HE_FILE, MBPP_FILE)
@pytest.mark.parametrize("bench, rel", [(HUMANEVAL_PLUS, HE_FILE), (MBPP_PLUS, MBPP_FILE)], ids=["humaneval+", "mbpp+"])
def test_canonical_solutions_pass_on_a_slice(bench, rel, sandbox):
    tasks = bench.load(str(shared_data(rel)))[:10]
    scored = score_samples(bench, tasks, canonical_and_pass(bench, tasks), sandbox=sandbox)
    n = len(tasks)
    assert [r.task_id for r in scored.results[:n] if not (r.passed and r.base_passed)] == []
    assert [r.task_id for r in scored.results[n:] if r.passed or r.base_passed] == []


@pytest.mark.slow
@needs_shared_data(HE_FILE, MBPP_FILE)
@pytest.mark.parametrize("name, rel, count", [("humaneval_plus", HE_FILE, 164), ("mbpp_plus", MBPP_FILE, 378)])
def test_all_canonical_solutions_pass_and_pass_bodies_score_zero(name, rel, count, tmp_path):
    from domainspec.common.cli import main

    bench = HUMANEVAL_PLUS if name == "humaneval_plus" else MBPP_PLUS
    tasks = bench.load(str(shared_data(rel)))
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(s) + "\n" for s in canonical_and_pass(bench, tasks)))
    timings = []
    for run in ("first", "second"):
        start = time.perf_counter()
        assert main(["eval", "score", "--benchmark", name, "--samples", str(samples), "--data", str(shared_data(rel)),
                     "--out", str(tmp_path / run)]) == 0
        timings.append(time.perf_counter() - start)
    summary = json.loads((tmp_path / "second" / "summary.json").read_text())
    results = [json.loads(ln) for ln in (tmp_path / "second" / "results.jsonl").read_text().splitlines()]
    canonical = [r for r in results if r["sample_index"] == 0]
    stubs = [r for r in results if r["sample_index"] == 1]
    assert len(canonical) == count and [r["task_id"] for r in canonical if not (r["passed"] and r["base_passed"])] == []
    assert [r["task_id"] for r in stubs if r["passed"] or r["base_passed"]] == []
    assert summary["metrics"]["pass@1"] == summary["metrics"]["base_pass@1"] == 0.5
    assert summary["sandbox"]["reference_outputs"]["computed"] == 0  # the second run used the cache
    assert "| 1 | 0.5000" in (tmp_path / "second" / "report.md").read_text()
    with Sandbox(SandboxConfig(workers=2)) as sb:
        limits, _ = bench.prepare(tasks, sb, sb.config)  # from the cache
        sizes = sorted(len(bench.program(t, bench.reference_completion(t))) for t in tasks)
    print(f"{name}: eval score {timings[0]:.1f}s (references computed), {timings[1]:.1f}s (cached); "
          f"program size median {sizes[len(sizes) // 2] / 1024:.0f} KiB, max {sizes[-1] / 1024:.0f} KiB; "
          f"limits {min(limits.values()):g}-{max(limits.values()):g}s")
    assert sizes[-1] < 256 * 1024
