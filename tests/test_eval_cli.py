"""`domainspec eval` argument parsing: score and generate flags reach the handlers as typed values."""
import pytest

from domainspec.common.cli import build_parser


def test_score_arguments():
    args = build_parser().parse_args(
        ["eval", "score", "--benchmark", "mbpp", "--samples", "s.jsonl", "--data", "d.jsonl", "--k", "1,10",
         "--grader", "qwen-compat", "--timeout", "30", "--workers", "3", "--limit", "5", "--split", "validation",
         "--out", "o"])
    assert (args.benchmark, args.k, args.grader, args.timeout, args.workers, args.limit, args.split) == \
        ("mbpp", (1, 10), "qwen-compat", 30.0, 3, 5, "validation")
    assert args.func.__name__ == "_score"


@pytest.mark.parametrize("bad", [["--k", "0"], ["--k", "1,x"], ["--benchmark", "hellaswag"], ["--grader", "loose"]])
def test_score_rejects_bad_arguments(bad):
    base = {"--benchmark": "math", "--samples": "s", "--out": "o", "--k": "1", "--grader": "strict"}
    base[bad[0]] = bad[1]
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "score", *[x for kv in base.items() for x in kv]])


def test_generate_arguments():
    args = build_parser().parse_args(
        ["eval", "generate", "--benchmark", "humaneval", "--model", "tiny", "--n", "4", "--temperature", "0.8",
         "--top-p", "0.95", "--max-new-tokens", "64", "--batch-size", "2", "--style", "chat", "--seed", "3",
         "--limit", "2", "--gguf-file", "m.gguf", "--out", "s.jsonl"])
    assert (args.benchmark, args.model, args.n, args.temperature, args.top_p, args.max_new_tokens,
            args.batch_size, args.style, args.seed, args.limit, args.gguf_file, args.out) == \
        ("humaneval", "tiny", 4, 0.8, 0.95, 64, 2, "chat", 3, 2, "m.gguf", "s.jsonl")
    assert args.func.__name__ == "_generate"
    defaults = build_parser().parse_args(["eval", "generate", "--benchmark", "gsm8k", "--model", "m", "--out", "o"])
    assert (defaults.n, defaults.temperature, defaults.style) == (1, 0.0, "auto")
