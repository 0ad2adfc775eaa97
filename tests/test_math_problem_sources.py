"""Math-loop problem sources (math/problem_sources.py): field mapping, bad rows, offline hub names, and the
loop end to end from GSM8K-format files (seeds from a train-format file, answer-only round problems, the
held-out set from a test-format file through the gsm8k benchmark), graded by the one grader; a round
ranked by an existing reward-model folder instead of a trained one, on problems without answers.

Training (SFT, RM) is real on a micro tiny model; generation is a scripted solver (right on a fixed
half of the samples), so every round has correct and incorrect samples.
"""
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import domainspec.math.loop as loop_mod
from domainspec.common.config import ConfigError, load_config
from domainspec.common.data.sources import DataError
from domainspec.math.loop import MathLoopConfig, run_loop
from domainspec.math.problem_sources import ProblemSource, load_source, map_row
from test_math_fakes import ChatTemplate
from test_math_loop import DEFAULT, MICRO

ROOT = Path(__file__).resolve().parents[1]


def _gsm8k(q: str, steps: str, answer: int) -> dict:
    return {"question": q, "answer": f"{steps}\n#### {answer}"}


def _problem(i: int) -> tuple[str, int]:
    a, b = 3 + i, 2 * i + 1
    return f"Mia has {a} red pens and her friend gives her {b} blue pens today. How many pens does Mia have?", a + b


@pytest.fixture
def files(tmp_path):
    """GSM8K-format train and test files, and an answer-only round file holding one near-copy of a test question."""
    train = [_gsm8k(q, f"Mia has {q.split()[2]} + more = <<{a}={a}>>{a} pens.", a) for q, a in map(_problem, range(12))]
    test = [_gsm8k(q, "Adding gives the total.", a) for q, a in map(_problem, range(40, 44))]
    rounds = [{"question": q, "answer": str(a)} for q, a in map(_problem, range(20, 26))]
    rounds.append({"question": "Quick one: " + test[0]["question"], "answer": "0"})  # shares 10-grams with held-out
    out = {}
    for name, rows in (("train", train), ("test", test), ("rounds", rounds)):
        out[name] = tmp_path / f"{name}.jsonl"
        out[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = {q: str(a) for q, a in map(_problem, list(range(12)) + list(range(20, 26)) + list(range(40, 44)))}
    return out, answers


# ---------------------------------------------------------------- mapping


@pytest.mark.parametrize("row, src, role, expect", [
    # GSM8K train row: the answer field is a worked solution; its #### line is the answer
    ({"question": "Q?", "answer": "2 * 9 = <<2*9=18>>18 eggs.\n#### 18"}, {}, "seed",
     {"answer": "18", "solution": "2 * 9 = 18 eggs.\nThe answer is \\boxed{18}"}),
    ({"question": "Q?", "answer": "1,200"}, {}, "round", {"answer": "1,200", "solution": None}),
    ({"question": "Q?", "answer": 42}, {}, "round", {"answer": "42", "solution": None}),
    # MATH: problem / solution / answer
    ({"problem": "P?", "solution": "So $x=\\boxed{\\frac12}$.", "answer": "\\frac12"},
     {"question_field": "problem", "solution_field": "solution"}, "seed",
     {"answer": "\\frac12", "solution": "So $x=\\boxed{\\frac12}$."}),
    # NuminaMath-style: no answer field, the last \boxed{} of the solution
    ({"problem": "P?", "solution": "First \\boxed{1}, then \\boxed{3}."},
     {"question_field": "problem", "answer_field": None, "solution_field": "solution"}, "seed",
     {"answer": "3", "solution": "First \\boxed{1}, then \\boxed{3}."}),
    # no answer at all: the majority vote fixes one later
    ({"question": "Q?"}, {"answer_field": None}, "round", {"answer": None, "solution": None}),
])
def test_rows_map_through_the_field_mapping(row, src, role, expect):
    got = map_row(row, "f.jsonl:1", ProblemSource(path="f.jsonl", **src), role, 0)
    assert {k: got[k] for k in expect} == expect
    assert got["question"] == row.get("question", row.get("problem"))


def test_a_row_without_the_mapped_field_names_file_line_and_field(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"problem": "P?", "solution": "\\boxed{1}"}) + "\n" + json.dumps({"problem": "Q?"}) + "\n")
    with pytest.raises(DataError, match=rf"{f}:2: missing field\(s\) 'solution'"):
        load_source(ProblemSource(path=str(f), question_field="problem", answer_field=None,
                                  solution_field="solution"), "seed")
    with pytest.raises(DataError, match=rf"problems.round_source: {f}:1: missing field\(s\) 'question'"):
        load_source(ProblemSource(path=str(f)), "round")
    f.write_text(json.dumps({"question": "Q?", "answer": "4"}) + "\n")
    with pytest.raises(DataError, match=rf"{f}:1: seed problems need a worked solution"):
        load_source(ProblemSource(path=str(f)), "seed")
    with pytest.raises(DataError, match=r"no such file"):
        load_source(ProblemSource(path=str(tmp_path / "missing.jsonl")), "round")


def test_benchmark_needs_a_path():
    with pytest.raises(ValueError, match="benchmark 'gsm8k' needs `path`"):
        ProblemSource(benchmark="gsm8k")


def test_unreachable_hub_name_offline_stops_before_any_work(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "domainspec.common.cli", "math", "loop", "--out", str(out),
                        "--set", "problems.round_source.path=no-such-org/no-such-dataset"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "problems.round_source: no-such-org/no-such-dataset" in r.stderr and "offline" in r.stderr
    assert not (out / "round_0").exists()  # nothing trained


# ---------------------------------------------------------------- the loop from GSM8K files


class Solver(ChatTemplate):
    """Sample j of a question is right unless a hash says otherwise (greedy: salt 0)."""

    def __init__(self, answers):
        self.answers = answers

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        out = []
        for i, p in enumerate(prompts):
            q = next(q for q in self.answers if q in p)
            start = sample_start[i] if sample_start else 0
            rows = []
            for j in range(start, start + params.n):
                salt = 0 if params.temperature == 0 else j + 1
                ok = zlib.crc32(f"{q}|{salt}".encode()) % 2 == 0
                rows.append(f"Adding up, attempt {salt}.\nThe answer is \\boxed{{{self.answers[q] + ('' if ok else '1')}}}")
            out.append(rows)
        return out


def _config(files, extra=()):
    f, _ = files
    return load_config(MathLoopConfig, DEFAULT, MICRO + [
        "rounds=1", "eval.modes=[cot]", "problems.seed_problems=10", "problems.round_problems=5",
        "problems.heldout_problems=4", f"problems.seed_source.path={f['train']}",
        f"problems.round_source.path={f['rounds']}",
        f"problems.heldout_source={{benchmark: gsm8k, path: {f['test']}}}", *extra])


def test_loop_from_gsm8k_files_then_a_round_with_an_existing_rm(files, tmp_path, monkeypatch):
    from domainspec.eval.grader.math_grader import MathGrader
    _, answers = files
    monkeypatch.setattr(loop_mod, "_backend", lambda path, sampling=None: Solver(answers))
    out = tmp_path / "run"
    summary = run_loop(_config(files), out)
    data = out / "data"
    seeds = [json.loads(x) for x in (data / "seed.jsonl").read_text().splitlines()]
    assert len(seeds) == 10 and all(s["solution"].endswith(f"\\boxed{{{s['answer']}}}") and "<<" not in s["solution"]
                                    for s in seeds)
    held = [json.loads(x) for x in (data / "heldout.jsonl").read_text().splitlines()]
    assert [h["answer"] for h in held] == [str(a) for _, a in map(_problem, range(40, 44))]
    # the near-copy of a held-out question was dropped by decontamination and reported
    report = json.loads((data / "problems_report.json").read_text())
    assert report["round"]["rows"] == 7 and report["round"]["contaminated_dropped"] == 1
    assert report["round"]["contaminated_by"] == {"heldout": 1} and report["round"]["usable"] == 6
    dropped = [json.loads(x) for x in (data / "dropped_round.jsonl").read_text().splitlines()]
    assert len(dropped) == 1 and dropped[0]["benchmark"] == "heldout"
    r1 = json.loads((out / "round_1" / "round.json").read_text())
    assert r1["problems"]["contaminated_dropped"] == 1 and "Problem sets" in (out / "report.md").read_text()
    # graded by the one grader against the file's answers
    graded = [json.loads(x) for x in (out / "round_1" / "samples.jsonl").read_text().splitlines()]
    grader = MathGrader()
    assert len(graded) == 5 and all(g["gold_source"] == "reference" for g in graded)
    for g in graded:
        assert g["gold"] == answers[g["question"]]
        assert g["correct"] == [grader.grade(r, g["gold"]).correct for r in g["responses"]]
    assert any(any(g["correct"]) and not all(g["correct"]) for g in graded)
    rm_folder = out / "round_1" / "rm" / "final"
    assert (rm_folder / "config.json").is_file() and r1["rm_source"] == "trained"
    assert (out / "round_1" / "sft" / "final" / "config.json").is_file()
    assert summary["table"][-1]["set"] == "heldout" and summary["table"][-1]["problems"] == 4

    # round problems without answers (majority vote), ranked by the RM folder just trained, none trained
    cfg = _config(files, [f"rm_from={rm_folder}", "problems.round_source.answer_field=null"])
    out2 = tmp_path / "given_rm"
    run_loop(cfg, out2)
    r1 = json.loads((out2 / "round_1" / "round.json").read_text())
    assert r1["rm"] == str(rm_folder.resolve()) and r1["rm_source"] == "given"
    assert not (out2 / "round_1" / "rm" / "final").exists()
    assert r1["rejection_sampling"]["used_rm"] is True
    kept = [json.loads(x) for x in (out2 / "round_1" / "rs" / "sft.jsonl").read_text().splitlines()]
    assert kept and all(k["rm_score"] is not None for k in kept)
    graded = [json.loads(x) for x in (out2 / "round_1" / "samples.jsonl").read_text().splitlines()]
    for g in graded:
        assert g["answer"] is None and g["gold_source"] in ("majority", "none")
        if g["gold_source"] == "majority":
            assert g["correct"] == [grader.grade(r, g["gold"]).correct for r in g["responses"]]
    assert "rm@3" in r1["eval"]["heldout"]["cot"]  # the given RM ranks the evaluation samples too


def test_rm_from_must_be_a_one_label_classifier(files, tmp_path):
    from domainspec.common.models.loading import tiny_model_path
    cfg = _config(files, [f"rm_from={tiny_model_path()}"])  # a causal LM, not a reward model
    with pytest.raises(ConfigError, match="rm_from: .*expected an AutoModelForSequenceClassification"):
        run_loop(cfg, tmp_path / "bad")
    assert not (tmp_path / "bad" / "round_0").exists()
