"""RM-guided rejection sampling (math/rejection_sampling.py): top-k correct by RM, dedup, stats, files."""
import json

import pytest

from domainspec.math.rejection_sampling import (RejectionSamplingConfig, grade_rows, normalize_problem,
                                                rejection_sample, sample_responses, select)
from test_math_fakes import FixedBackend


def _row(responses, correct, **kw):
    return {"id": "p1", "question": "What is 2+3?", "responses": responses, "correct": correct, "gold": "5",
            "gold_source": "reference", **kw}


def test_select_keeps_top_k_correct_by_rm_score_and_dedups():
    responses = ["A \\boxed{5}", "B \\boxed{4}", "C \\boxed{5}", "A  \\boxed{5}\n", "D \\boxed{5}", "E \\boxed{5}"]
    correct = [True, False, True, True, True, True]
    scores = [0.1, 9.0, 0.7, 5.0, 0.3, 0.9]  # the wrong one scores best: it must never be kept
    kept, stats = select(_row(responses, correct), scores, top_k=3)
    # "A  \boxed{5}\n" is a whitespace-variant of "A \boxed{5}": deduplicated (first occurrence wins)
    assert [k["response"] for k in kept] == ["E \\boxed{5}", "C \\boxed{5}", "D \\boxed{5}"]
    assert [k["rm_score"] for k in kept] == [0.9, 0.7, 0.3]
    assert stats == {"id": "p1", "num_samples": 6, "num_correct": 5, "num_unique_correct": 4, "num_kept": 3,
                     "gold": "5", "gold_source": "reference", "rm_mean": pytest.approx(16.0 / 6),
                     "rm_mean_kept": pytest.approx(1.9 / 3)}


def test_select_without_rm_keeps_first_unique_correct_and_without_dedup_keeps_repeats():
    responses = ["x \\boxed{5}", "x \\boxed{5}", "y \\boxed{5}"]
    kept, _ = select(_row(responses, [True] * 3), None, top_k=2)
    assert [k["response"] for k in kept] == ["x \\boxed{5}", "y \\boxed{5}"]
    kept, stats = select(_row(responses, [True] * 3), None, top_k=2, dedup=False)
    assert [k["response"] for k in kept] == ["x \\boxed{5}", "x \\boxed{5}"]
    assert stats["num_unique_correct"] == 3


def test_select_rejects_score_count_mismatch():
    with pytest.raises(ValueError, match="problem p1: 1 RM scores for 2 responses"):
        select(_row(["a", "b"], [True, True]), [0.5], top_k=1)


def test_grade_with_reference_and_with_majority_vote():
    grader = pytest.importorskip("domainspec.eval.grader.math_grader").MathGrader()
    rows = [{"id": "a", "question": "q", "answer": "5",
             "responses": ["so \\boxed{5}", "so \\boxed{5.0}", "so \\boxed{6}"]},
            {"id": "b", "question": "q2", "answer": None,
             "responses": ["\\boxed{7}", "\\boxed{7}", "\\boxed{3}", "no answer here"]},
            {"id": "c", "question": "q3", "answer": None,  # no majority reaches 50%: nothing is correct
             "responses": ["\\boxed{1}", "\\boxed{2}", "\\boxed{3}", "\\boxed{4}"]}]
    graded = grade_rows(rows, grader, majority_min_share=0.5)
    assert graded[0]["correct"] == [True, True, False] and graded[0]["gold_source"] == "reference"
    assert graded[1]["gold"] == "7" and graded[1]["gold_source"] == "majority"
    assert graded[1]["correct"] == [True, True, False, False]
    assert graded[2]["gold_source"] == "none" and graded[2]["correct"] == [False] * 4


def test_rejection_sample_end_to_end_writes_sft_and_stats(tmp_path):
    grader = pytest.importorskip("domainspec.eval.grader.math_grader").MathGrader()
    backend = FixedBackend({"What is 2+3?": ["2+3 = 5. \\boxed{5}", "I think \\boxed{6}", "2+3 = 5. \\boxed{5}",
                                            "Adding: 5. The answer is \\boxed{5}"],
                            "What is 9-9?": ["\\boxed{1}", "\\boxed{2}"]})
    cfg = RejectionSamplingConfig(sampling={"n": 4, "temperature": 0.8}, top_k=2)
    problems = [{"id": "p1", "question": "What is 2+3?", "answer": "5"},
                {"id": "p2", "question": "What is 9-9?", "answer": "0"}]
    rows = sample_responses(backend, problems, cfg)
    assert backend.params_seen[0].n == 4 and backend.params_seen[0].temperature == 0.8
    summary = rejection_sample(grade_rows(rows, grader), cfg, tmp_path)
    sft = [json.loads(x) for x in (tmp_path / "sft.jsonl").read_text().splitlines()]
    stats = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r["messages"][-1]["content"] for r in sft] == ["2+3 = 5. \\boxed{5}", "Adding: 5. The answer is \\boxed{5}"]
    assert [m["role"] for m in sft[0]["messages"]] == ["system", "user", "assistant"]
    assert stats[0]["num_correct"] == 3 and stats[0]["num_unique_correct"] == 2 and stats[1]["num_kept"] == 0
    assert summary["num_samples"] == 8 and summary["num_kept"] == 2 and summary["problems_with_kept"] == 1
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_normalize_problem_formats():
    pytest.importorskip("domainspec.eval.grader.math_grader")
    assert normalize_problem({"question": "q", "answer": "work\n#### 1,234"}, 0)["answer"] in ("1234", "1,234")
    assert normalize_problem({"problem": "p", "solution": "so \\boxed{3}", "unique_id": "u"}, 4) == \
        {"id": "u", "question": "p", "answer": "3"}
    with pytest.raises(ValueError, match="row 2: no 'question'"):
        normalize_problem({"answer": "1"}, 2)
