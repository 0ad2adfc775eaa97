"""Math evaluation goes through the one generate -> score path: its maj@k / rm@k / pass@1 are the
scoring path's numbers on the same responses, in every grader mode."""
import json

import pytest

from domainspec.eval.benchmarks.problems import ProblemSet
from domainspec.eval.grader.math_grader import MathGrader
from domainspec.eval.passk import majority_correct
from domainspec.eval.scoring import score_samples
from domainspec.math.evaluation import MathEvalConfig, evaluate
from test_math_fakes import ChatTemplate

PROBLEMS = [{"id": "half", "question": "What is 1/2 as a decimal?", "answer": "1/2"},
            {"id": "three", "question": "What is 1 + 2?", "answer": "3"}]
SAMPLED = {"half": ["\\boxed{0.5}", "so \\boxed{0.5}", "\\boxed{3}"],   # majority 0.5 == gold 1/2 (qwen-compat)
           "three": ["\\boxed{4}", "\\boxed{3}", "\\boxed{4}"]}          # majority 4: wrong
GREEDY = {"half": "\\boxed{0.5}", "three": "\\boxed{3}"}


class Canned(ChatTemplate):
    """Greedy calls get GREEDY; sampled calls get SAMPLED[i] for sample index i."""

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        out = []
        for k, p in enumerate(prompts):
            pid = next(x["id"] for x in PROBLEMS if x["question"] in p)
            start = (sample_start or [0] * len(prompts))[k]
            out.append([GREEDY[pid]] if params.temperature == 0 else SAMPLED[pid][start:start + params.n])
        return out


@pytest.mark.parametrize("mode", ["strict", "qwen-compat"])
def test_math_eval_maj_at_k_equals_the_scoring_path(tmp_path, mode):
    cfg = MathEvalConfig(grader_mode=mode, sampling={"n": 3, "temperature": 0.7})
    res = evaluate(Canned(), PROBLEMS, cfg, tmp_path, "toy")["cot"]
    bench = ProblemSet("toy")
    rows = [{"task_id": pid, "completion": c} for pid, cs in SAMPLED.items() for c in cs]
    scored = score_samples(bench, bench.tasks(PROBLEMS), rows, ks=(1,), grader=MathGrader(mode))
    assert res["maj@3"] == scored.summary["metrics"]["maj@3"]
    # the regression: '0.5', '0.5', '3' votes for 0.5, which equals the gold 1/2 in both modes; the old math-eval
    # path voted without the grader's equivalence and counted it wrong in qwen-compat
    assert res["maj@3"] == 0.5
    answers = [r.extracted for r in scored.results if r.task_id == "half"]
    correct = [r.passed for r in scored.results if r.task_id == "half"]
    grader = MathGrader(mode)
    assert majority_correct(answers, correct, 3, vote=grader.majority_vote, equivalent=grader.equiv)
    # both modes' votes return one of their inputs, so the majority's correctness is a sample's own
    assert grader.majority_vote(answers) in answers
    assert majority_correct(answers, correct, 3, vote=grader.majority_vote)
    assert res["sample_accuracy"] == pytest.approx(sum(r.passed for r in scored.results) / 6)
    assert res["num_samples"] == 6 and res["k"] == 3
    greedy = [json.loads(x) for x in (tmp_path / "toy_cot" / "greedy" / "results.jsonl").read_text().splitlines()]
    assert res["pass@1"] == sum(r["passed"] for r in greedy) / 2
    assert json.loads((tmp_path / "metrics_toy.json").read_text())["cot"]["maj@3"] == res["maj@3"]


def test_math_eval_rm_at_k_uses_the_reward_scores(tmp_path, monkeypatch):
    import domainspec.math.reward_model as rm_mod
    # the reward model prefers responses that say "so": the right answer of 'half' is picked
    monkeypatch.setattr(rm_mod, "score", lambda model, tok, qs, rs, max_length: [1.0 if "so" in r else 0.0 for r in rs])
    cfg = MathEvalConfig(grader_mode="qwen-compat", sampling={"n": 3, "temperature": 0.7})
    res = evaluate(Canned(), PROBLEMS, cfg, tmp_path, "toy", rm=(None, None))["cot"]
    assert res["rm@3"] == 0.5  # 'half': "so \boxed{0.5}" is right; 'three': all tie at 0 -> the first, 4, wrong
    samples = [json.loads(x) for x in (tmp_path / "toy_cot" / "sampled" / "samples.jsonl").read_text().splitlines()]
    assert [s["score"] for s in samples if s["task_id"] == "half"] == [0.0, 1.0, 0.0]


def test_problems_without_answers_cannot_be_scored():
    with pytest.raises(ValueError, match="without an answer"):
        ProblemSet("p").tasks([{"id": "a", "question": "q", "answer": None}])


def test_a_completer_that_drops_or_shortens_samples_is_an_error(tmp_path):
    from domainspec.common.models.sampling import SamplingConfig
    from domainspec.eval.generate import generate_samples

    tasks = ProblemSet("p").tasks(PROBLEMS)

    def short(tasks, sampling, start, on_done):
        on_done(0, ["only one"])

    with pytest.raises(ValueError, match="returned 1 completions where 2 were asked for"):
        generate_samples(tasks, short, SamplingConfig(n=2), tmp_path / "s.jsonl", {})

    def drops(tasks, sampling, start, on_done):
        on_done(0, ["a", "b"])

    with pytest.raises(ValueError, match=r"nothing for 1 task\(s\): \['three'\]"):
        generate_samples(tasks, drops, SamplingConfig(n=2), tmp_path / "t.jsonl", {})
