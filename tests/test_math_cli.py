"""``domainspec math ...`` commands on a micro model (real HF backend, real sandbox, real grader)."""
import json
import subprocess
import sys

import pytest

from domainspec.common.cli import main


@pytest.fixture(scope="module")
def micro_lm(tmp_path_factory):
    from domainspec.common.data.builtin.math_problems import math_corpus_documents
    from domainspec.common.models.tiny import build_tiny_model
    return build_tiny_model(tmp_path_factory.mktemp("lm"), texts=list(math_corpus_documents(100, 0)), vocab_size=300,
                            hidden_size=32, num_hidden_layers=1, intermediate_size=64, num_attention_heads=4,
                            num_key_value_heads=2)


@pytest.fixture
def problems(tmp_path):
    p = tmp_path / "problems.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [{"question": "What is 2 + 3?", "answer": "5"},
                                                    {"problem": "Solve 2x = 8.", "solution": "x = \\boxed{4}"}]) + "\n")
    return p


@pytest.mark.parametrize("mode", ["cot", "tir"])
def test_infer_writes_graded_samples(micro_lm, problems, tmp_path, mode, capsys):
    out = tmp_path / f"{mode}.jsonl"
    rc = main(["math", "infer", "--model", str(micro_lm), "--mode", mode, "--problems", str(problems), "--n", "2",
               "--temperature", "0.8", "--max-new-tokens", "24", "--tool-timeout", "2", "--out", str(out)])
    assert rc == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["task_id"] for r in rows] == ["0", "0", "1", "1"]
    assert all(isinstance(r["passed"], bool) and r["mode"] == mode for r in rows)
    assert f"{mode}: " in capsys.readouterr().out


def test_rm_train_cli_on_graded_samples(micro_lm, tmp_path):
    samples = tmp_path / "samples.jsonl"
    rows = [{"question": f"What is {i} + 1?", "responses": [f"\\boxed{{{i + 1}}}", f"\\boxed{{{i + 2}}}"],
             "correct": [True, False]} for i in range(8)]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = main(["math", "rm-train", "--groups", str(samples), "--init-from", str(micro_lm), "--out", str(tmp_path / "rm"),
               "--set", "train.max_steps=2", "--set", "train.global_batch_size=2", "--set", "train.micro_batch_size=2",
               "--set", "train.progress=false", "--set", "heldout_fraction=0.25"])
    assert rc == 0
    ev = json.loads((tmp_path / "rm" / "rm_eval.json").read_text())
    assert ev["num_groups"] == 2 and ev["num_pairs"] == 2
    assert (tmp_path / "rm" / "final" / "config.json").is_file()


def test_bad_config_key_is_a_config_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "domainspec.common.cli", "math", "loop", "--out", str(tmp_path),
                        "--set", "rejection_sampling.sampling.nn=3"], capture_output=True, text=True)
    assert r.returncode == 2 and "rejection_sampling.sampling.nn: unknown key" in r.stderr


@pytest.mark.parametrize("mode", ["cot", "tir"])
def test_reject_sample_cli_builds_the_stage_config(micro_lm, problems, tmp_path, mode):
    """The CLI takes the reject_sample stage's config (sampling, TIR and sandbox sections included)."""
    out = tmp_path / "rs"
    rc = main(["math", "reject-sample", "--model", str(micro_lm), "--problems", str(problems), "--out", str(out),
               "--set", "rejection_sampling.sampling.n=3", "--set", "rejection_sampling.sampling.max_new_tokens=16",
               "--set", "rejection_sampling.sampling.temperature=0.9", "--set", f"rejection_sampling.mode={mode}",
               "--set", "tir.max_tool_calls=1", "--set", "sandbox.workers=1"])
    assert rc == 0
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [len(r["responses"]) for r in samples] == [3, 3] and [r["answer"] for r in samples] == ["5", "4"]
    resolved = (out / "resolved_config.yaml").read_text()
    assert "max_tool_calls: 1" in resolved and f"mode: {mode}" in resolved and "n: 3" in resolved
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_samples"] == 6
