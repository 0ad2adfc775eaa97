"""Synthetic problems (math/synthetic.py): templated from seeds, prompted with majority-vote answers, CPT text."""
import pytest

from domainspec.common.data.builtin.math_problems import verify_problem, Problem
from domainspec.eval.grader.math_grader import MathGrader
from domainspec.math.synthetic import (SyntheticConfig, math_text_documents, problems_from_seeds, prompted_problems,
                                       templated_problems)
from test_math_fakes import ChatTemplate


def test_templated_problems_are_distinct_deterministic_and_avoid_excluded():
    a = templated_problems(30, seed=3, kinds=["system"], difficulty=1)
    assert a == templated_problems(30, seed=3, kinds=["system"], difficulty=1)
    assert len({r["question"] for r in a}) == 30 and {r["kind"] for r in a} == {"system"}
    b = templated_problems(10, seed=3, kinds=["system"], difficulty=1, exclude={r["question"] for r in a})
    assert not {r["question"] for r in a} & {r["question"] for r in b}
    with pytest.raises(ValueError, match="only .* distinct templated problems"):
        templated_problems(60, seed=0, kinds=["system"], difficulty=1)  # 45 exist


def test_problems_from_seeds_follow_the_seeds_kinds_and_level_with_checked_answers():
    seeds = templated_problems(5, seed=0, kinds=["percentage", "linear_equation"], difficulty=2)
    new = problems_from_seeds(seeds, SyntheticConfig(n=20, seed=9))
    assert {r["kind"] for r in new} <= {"percentage", "linear_equation"} and {r["difficulty"] for r in new} == {2}
    assert not {r["question"] for r in new} & {s["question"] for s in seeds}
    # every answer re-checked by sympy through the generator's own check
    from domainspec.common.data.builtin.math_problems import make_problem
    assert all(r["solution"].endswith(f"\\boxed{{{r['answer']}}}") for r in new)
    assert verify_problem(make_problem(9, 0, ["percentage", "linear_equation"], 2))


class Writer(ChatTemplate):
    """Writes problems on request; solves each by a fixed vote list."""

    def __init__(self, problems, votes):
        self.problems, self.votes, self.i = problems, votes, 0

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        out = []
        for p in prompts:
            if "Write one new problem" in p:
                out.append([self.problems[self.i % len(self.problems)]])
                self.i += 1
            else:
                q = next(q for q in self.votes if q in p)
                out.append(self.votes[q][:params.n])
            if on_done is not None:
                on_done(len(out) - 1, out[-1])
        return out


def test_prompted_problems_keep_majority_verified_new_questions():
    seeds = [{"question": "Ann has 2 apples and buys 3. How many apples does she have?", "answer": "5"}]
    q1, q2 = "Ben has 4 pens and buys 5 more. How many pens?", "Cara reads 6 pages a day for 2 days. Pages read?"
    backend = Writer([f"Problem: {q1}", f"Problem: {q2}", f"Problem: {q1}", "ok", f"Problem: {seeds[0]['question']}"],
                     {q1: ["so \\boxed{9}", "\\boxed{9}", "\\boxed{9.0}", "\\boxed{8}"],
                      q2: ["\\boxed{12}", "\\boxed{10}", "\\boxed{11}", "\\boxed{13}"]})
    rows, stats = prompted_problems(backend, seeds, SyntheticConfig(source="prompted", n=5, votes=4, min_agreement=0.5),
                                    MathGrader())
    # q1 kept with its majority answer (3 of 4 agree, 9.0 == 9); q2's majority has 1 vote of 4; a repeat, a
    # non-problem and a copy of the seed are dropped
    assert [(r["question"], r["answer"], r["agreement"]) for r in rows] == [(q1, "9", 0.75)]
    assert {k: stats[k] for k in ("requested", "parsed_new", "kept", "dropped")} == {
        "requested": 5, "parsed_new": 2, "kept": 1,
        "dropped": {"known_question": 1, "low_agreement": 1, "not_a_problem": 1, "repeat": 1}}
    # each dropped request or question says why (the loop writes them to the round's synthesis/dropped.jsonl)
    reasons = {(d.get("question") or d["text"]): d["reason"] for d in stats["dropped_rows"]}
    assert reasons == {q2: "low_agreement", "ok": "not_a_problem", f"Problem: {q1}": "repeat",
                       f"Problem: {seeds[0]['question']}": "known_question"}


def test_prompted_problems_resume_from_their_files(tmp_path):
    """With out_dir both sampling steps are kept on disk: a second call samples nothing again."""
    seeds = [{"question": "Ann has 2 apples and buys 3. How many apples does she have?", "answer": "5"}]
    q1 = "Ben has 4 pens and buys 5 more. How many pens?"
    cfg = SyntheticConfig(source="prompted", n=2, votes=3, min_agreement=0.5)
    first = Writer([f"Problem: {q1}", "no"], {q1: ["\\boxed{9}"] * 3})
    rows, _ = prompted_problems(first, seeds, cfg, MathGrader(), out_dir=tmp_path, id_prefix="gen-r1")
    assert [(r["id"], r["answer"], r["votes"]) for r in rows] == [("gen-r1-0", "9", 3)]
    assert (tmp_path / "requests.jsonl").is_file() and (tmp_path / "votes.jsonl").is_file()
    again = Writer(["Problem: something else entirely, never asked"], {})
    assert prompted_problems(again, seeds, cfg, MathGrader(), out_dir=tmp_path, id_prefix="gen-r1")[0] == rows
    assert again.i == 0  # nothing was sampled


def test_math_text_documents_are_worked_problems():
    docs = list(math_text_documents(4, seed=0, difficulty=1))
    assert len(docs) == 4 and all(d.startswith("Question: ") and "\\boxed{" in d for d in docs)
