"""Self-improvement loop (math/loop.py): a micro run end to end, round-level resume, config guard.

Training (SFT, RM) is real on a micro tiny model; generation is a scripted solver so every round
has correct and incorrect samples whatever the micro model has learnt.
"""
import json
import re
import zlib
from pathlib import Path

import pytest

import domainspec.math.loop as loop_mod
from domainspec.common.config import ConfigError, load_config
from domainspec.common.pipeline.markers import read_done, read_running
from domainspec.math.loop import MathLoopConfig, run_loop
from data_helpers import config_error
from test_math_fakes import ChatTemplate

DEFAULT = Path(loop_mod.__file__).with_name("default_loop.yaml")
MICRO = ["model.tiny.hidden_size=32", "model.tiny.num_hidden_layers=1", "model.tiny.intermediate_size=64",
         "model.tiny.num_attention_heads=2", "model.tiny.num_key_value_heads=1",
         "model.tiny.vocab_size=300", "problems.seed_problems=16", "problems.round_problems=6",
         "problems.heldout_problems=4", "initial_sft.seq_len=256", "initial_sft.train.max_steps=2",
         "initial_sft.train.global_batch_size=4", "initial_sft.train.micro_batch_size=4",
         "initial_sft.train.save_every=0", "rejection_sampling.sampling.n=4", "rejection_sampling.top_k=2", "reward_model.train.epochs=1",
         "reward_model.max_length=96", "round_sft.seq_len=256", "round_sft.train.max_steps=2",
         "round_sft.train.global_batch_size=4", "round_sft.train.micro_batch_size=4", "eval.sampling.n=3",
         "eval.modes=[cot,tir]", "sandbox.workers=1"]


class Solver(ChatTemplate):
    """Answers from the problem files: sample j of a question is right unless a hash says otherwise."""

    calls: list = []

    def __init__(self, answers):
        self.answers = answers

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        Solver.calls.append(len(prompts))
        out = []
        for p in prompts:
            q = next(q for q in self.answers if q in p)
            rows = []
            for j in range(params.n):
                salt = 0 if params.temperature == 0 else j + 1
                ok = zlib.crc32(f"{q}|{salt}".encode()) % 2 == 0
                ans = self.answers[q] if ok else self.answers[q] + "1"
                rows.append(f"Working it out, attempt {salt}.\nThe answer is \\boxed{{{ans}}}")
            out.append(rows)
        return out


def _known_answers(data_dir) -> dict:
    """question -> answer of every problem set the loop wrote under ``data_dir``."""
    answers = {}
    for f in data_dir.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            answers[row["question"]] = row["answer"]
    return answers


@pytest.fixture
def solver(monkeypatch, tmp_path):
    def backend(path, sampling=None):
        return Solver(_known_answers(tmp_path / "run" / "data"))
    Solver.calls = []
    monkeypatch.setattr(loop_mod, "_backend", backend)
    return backend


def test_default_config_loads():
    cfg = load_config(MathLoopConfig, DEFAULT)
    assert cfg.rounds == 2 and cfg.model.name_or_path == "tiny" and cfg.reward_model.loss == "pairwise"
    assert cfg.rm_data == "all_rounds" and cfg.problems.kinds == ["arithmetic"]


def test_micro_loop_runs_and_resumes_round_by_round(solver, tmp_path, monkeypatch):
    cfg = load_config(MathLoopConfig, DEFAULT, MICRO)
    out = tmp_path / "run"
    # first attempt dies inside round 2 after its samples were graded and written
    import domainspec.math.rejection_sampling as rs_mod
    orig = rs_mod.rejection_sample

    def dying(graded, scfg, out_dir, **kw):
        if "round_2" in str(out_dir):
            raise KeyboardInterrupt("simulated kill in round 2")
        return orig(graded, scfg, out_dir, **kw)
    monkeypatch.setattr(rs_mod, "rejection_sample", dying)
    with pytest.raises(KeyboardInterrupt):
        run_loop(cfg, out)
    assert (out / "round_1" / "round.json").is_file() and not (out / "round_2" / "round.json").exists()
    assert (out / "round_2" / "samples.jsonl").is_file() and (out / "round_2" / "rm" / "final" / "config.json").is_file()
    # the steps that finished left their done markers; the killed one and the round did not
    assert read_done(out / "round_2", "samples") and read_done(out / "round_2", "rm")
    assert read_done(out / "round_2", "rs") is None and read_done(out / "round_2") is None
    assert read_running(out, "loop").hash == cfg.content_hash()
    r1_mtime = (out / "round_1" / "round.json").stat().st_mtime_ns
    rm2_mtime = (out / "round_2" / "rm" / "rm_eval.json").stat().st_mtime_ns
    monkeypatch.setattr(rs_mod, "rejection_sample", orig)
    Solver.calls = []

    summary = run_loop(cfg, out)
    # rounds 0 and 1 were skipped, round 2 went on from its finished steps (no new sampling, same RM)
    assert (out / "round_1" / "round.json").stat().st_mtime_ns == r1_mtime
    assert (out / "round_2" / "rm" / "rm_eval.json").stat().st_mtime_ns == rm2_mtime
    # only round 2's evaluation: greedy + sampled over 4 held-out problems, CoT and TIR (no tool calls)
    assert sum(Solver.calls) == 2 * 2 * 4
    rounds = [json.loads((out / f"round_{k}" / "round.json").read_text()) for k in range(3)]
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    assert list(rounds[0]["phase_seconds"]) == ["sft", "eval"]
    assert list(rounds[1]["phase_seconds"]) == ["sample", "grade", "rm", "select", "sft", "eval"]
    assert "sample" not in rounds[2]["phase_seconds"]  # resumed after its sampling: only what ran is timed
    assert "- round 1: sample " in (out / "report.md").read_text()
    for k in (1, 2):
        rd = out / f"round_{k}"
        assert (rd / "sft" / "final" / "config.json").is_file()
        assert rounds[k]["policy"] == str(rd / "sft" / "final")
        sft = [json.loads(x) for x in (rd / "rs" / "sft.jsonl").read_text().splitlines()]
        stats = [json.loads(x) for x in (rd / "rs" / "stats.jsonl").read_text().splitlines()]
        assert len(stats) == 6 and all(s["num_kept"] <= 2 for s in stats)
        assert len(sft) == sum(s["num_kept"] for s in stats) > 0
        assert all(r["rm_score"] is not None for r in sft)  # ranked by the round's RM
        rm_eval = json.loads((rd / "rm" / "rm_eval.json").read_text())
        assert rm_eval["num_pairs"] > 0 and 0.0 <= rm_eval["pairwise_accuracy"] <= 1.0
        assert "rm@3" in rounds[k]["eval"]["heldout"]["cot"]
    table = summary["table"]
    assert [(x["round"], x["mode"]) for x in table] == [(r, m) for r in range(3) for m in ("cot", "tir")]
    assert table[0]["rm@k"] is None and table[4]["eval_samples"] == 4 * 3
    assert "| 2 | heldout | tir |" in (out / "report.md").read_text()
    assert (out / "policy").resolve() == (out / "round_2" / "sft" / "final").resolve()
    # the scripted solver is right on a fixed half: the greedy accuracy is what the grader says it is
    greedy = [json.loads(x) for x in
              (out / "round_2" / "eval" / "heldout_cot" / "greedy" / "results.jsonl").read_text().splitlines()]
    assert table[4]["pass@1"] == pytest.approx(sum(g["passed"] for g in greedy) / len(greedy))

    assert read_done(out, "loop").hash == cfg.content_hash() and read_running(out, "loop") is None
    changed = load_config(MathLoopConfig, DEFAULT, MICRO + ["rejection_sampling.sampling.n=5"])
    with pytest.raises(ConfigError, match="different config"):
        run_loop(changed, out)


class SynthSolver(Solver):
    """Solver that also writes problems: a prompt asking for one gets "Tom has a apples..." (a, b from the
    prompt's hash) or, one time in four, a reply that is not a problem; Tom's questions are always solved right."""

    TOM = re.compile(r"Tom has (\d+) apples and gets (\d+) more")

    def generate(self, prompts, params, progress=False, sample_start=None, on_done=None):
        out = []
        for i, p in enumerate(prompts):
            if "Write one new problem" in p:
                h = zlib.crc32(f"{p}|{params.seed}".encode())
                out.append(["ok" if h % 4 == 0 else
                            f"Problem: Tom has {h % 7 + 2} apples and gets {h % 5 + 1} more. How many apples now?"])
            elif m := self.TOM.search(p):
                out.append([f"Adding them.\nThe answer is \\boxed{{{int(m[1]) + int(m[2])}}}"] * params.n)
            else:
                out.extend(super().generate([p], params))
            if on_done is not None:
                on_done(i, out[-1])
        return out


def test_loop_round_with_prompted_synthesis_samples_the_kept_problems(monkeypatch, tmp_path):
    def backend(path, sampling=None):
        return SynthSolver(_known_answers(tmp_path / "run" / "data"))
    monkeypatch.setattr(loop_mod, "_backend", backend)
    cfg = load_config(MathLoopConfig, DEFAULT, MICRO + ["rounds=1", "eval.modes=[cot]", "synthesis.n=8",
                                                        "synthesis.votes=3", "synthesis.few_shot=2"])
    out = tmp_path / "run"
    summary = run_loop(cfg, out)
    sdir = out / "round_1" / "synthesis"
    kept = [json.loads(x) for x in (sdir / "problems.jsonl").read_text().splitlines()]
    dropped = [json.loads(x) for x in (sdir / "dropped.jsonl").read_text().splitlines()]
    stats = summary["rounds"][1]["synthesis"]
    assert stats["requested"] == 8 and stats["kept"] == len(kept) > 0 and stats["writer"] == "policy"
    # every request is kept or dropped with a reason: nothing is lost silently
    assert len(kept) + len(dropped) == 8 and sum(stats["dropped"].values()) == len(dropped)
    assert {d["reason"] for d in dropped} <= {"not_a_problem", "repeat", "known_question", "no_majority",
                                               "low_agreement", "contaminated"}
    for r in kept:  # the majority answer of the writer's votes (always right here)
        m = SynthSolver.TOM.search(r["question"])
        assert r["answer"] == str(int(m[1]) + int(m[2])) and r["agreement"] == 1.0 and r["id"].startswith("synth-r1-")
    # the kept problems are sampled and graded with the round's own
    sampled = [json.loads(x) for x in (out / "round_1" / "samples.jsonl").read_text().splitlines()]
    assert len(sampled) == 6 + len(kept)
    assert {r["question"] for r in kept} <= {r["question"] for r in sampled}
    assert "Prompted synthesis" in (out / "report.md").read_text()
    assert "synthesize" in summary["rounds"][1]["phase_seconds"]


def test_bad_loop_config_names_the_yaml_path(tmp_path):
    msg = config_error(MathLoopConfig, tmp_path / "loop.yaml",
                       "rounds: 2\nrejection_sampling:\n  sampling:\n    n: 0\n    tempreature: 1.0\n")
    assert "rejection_sampling.sampling.n" in msg and "loop.yaml:4" in msg
    assert "rejection_sampling.sampling.tempreature: unknown key" in msg


def test_rm_groups_merge_a_question_across_rounds():
    from domainspec.math.loop import rm_groups
    r1 = [{"question": "q1", "responses": ["a", "b"], "correct": [True, False]},
          {"question": "q2", "responses": ["c"], "correct": [True]}]
    r2 = [{"question": "q1", "responses": ["d"], "correct": [False]}]
    groups = rm_groups([r1, r2])
    assert groups == [{"question": "q1", "responses": ["a", "b", "d"], "labels": [True, False, False]},
                      {"question": "q2", "responses": ["c"], "labels": [True]}]
