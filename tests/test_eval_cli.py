"""`domainspec eval` through the public CLI: score and generate flags reach the scoring and generation
functions as typed values (those functions are replaced by recorders, so nothing heavy runs)."""
import contextlib
import functools
import inspect

import pytest

from domainspec.common.cli import build_parser, main
from domainspec.eval import generate, scoring


def _recorder(real, calls, result):
    """Stands in for ``real``; records its arguments by parameter name."""
    @functools.wraps(real)  # keeps real's signature, so a second recorder over this one binds the same names
    def fake(*args, **kwargs):
        bound = inspect.signature(real).bind(*args, **kwargs)
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        return result
    return fake


def test_score_arguments(monkeypatch):
    calls = []
    summary = {"benchmark": "mbpp", "num_tasks": 5, "num_samples": 5, "metrics": {"pass@1": 0.4}}
    monkeypatch.setattr(scoring, "score", _recorder(scoring.score, calls, summary))
    rc = main(["eval", "score", "--benchmark", "mbpp", "--samples", "s.jsonl", "--data", "d.jsonl", "--k", "1,10",
               "--grader", "qwen-compat", "--timeout", "30", "--workers", "3", "--limit", "5", "--split", "validation",
               "--out", "o"])
    assert rc == 0 and len(calls) == 1
    got = calls[0]
    assert (got["benchmark_name"], got["samples_path"], got["out_dir"], got["data_path"], got["ks"],
            got["grader_mode"], got["limit"], got["split"]) == \
        ("mbpp", "s.jsonl", "o", "d.jsonl", (1, 10), "qwen-compat", 5, "validation")
    assert (got["sandbox_config"].timeout_s, got["sandbox_config"].workers) == (30.0, 3)


@pytest.mark.parametrize("bad", [["--k", "0"], ["--k", "1,x"], ["--benchmark", "hellaswag"], ["--grader", "loose"]])
def test_score_rejects_bad_arguments(bad):
    base = {"--benchmark": "math", "--samples": "s", "--out": "o", "--k": "1", "--grader": "strict"}
    base[bad[0]] = bad[1]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "score", *[x for kv in base.items() for x in kv]])


def _generate_with(monkeypatch, argv):
    runs, outs = [], []
    monkeypatch.setattr(generate, "benchmark_run", _recorder(generate.benchmark_run, runs, contextlib.nullcontext("RUN")))
    monkeypatch.setattr(generate, "generate_for_benchmark",
                        _recorder(generate.generate_for_benchmark, outs, [{"task_id": "t", "sample_index": 0}]))
    assert main(["eval", "generate", *argv]) == 0
    assert len(runs) == 1 and outs[0]["run"] == "RUN"
    return runs[0], outs[0]["out"]


def test_generate_arguments(monkeypatch):
    run, out = _generate_with(monkeypatch, [
        "--benchmark", "humaneval", "--model", "tiny", "--n", "4", "--temperature", "0.8", "--top-p", "0.95",
        "--max-new-tokens", "64", "--batch-size", "2", "--style", "chat", "--seed", "3", "--limit", "2",
        "--gguf-file", "m.gguf", "--out", "s.jsonl"])
    s = run["sampling"]
    assert (run["benchmark"], run["model"], s.n, s.temperature, s.top_p, s.max_new_tokens, s.batch_size,
            run["style"], s.seed, run["limit"], run["gguf_file"], out) == \
        ("humaneval", "tiny", 4, 0.8, 0.95, 64, 2, "chat", 3, 2, "m.gguf", "s.jsonl")
    run, _ = _generate_with(monkeypatch, ["--benchmark", "gsm8k", "--model", "m", "--out", "o"])
    assert (run["sampling"].n, run["sampling"].temperature, run["style"]) == (1, 0.0, "auto")
