"""Generation backend and `eval generate` on the tiny default model: determinism, batching, stops, n, resume."""
import json

import pytest

pytest.importorskip("torch")

from domainspec.common.models.generation import draw_tokens, make_backend, nucleus_probs, sample_seed, trim_at_stop  # noqa: E402,E501
from domainspec.common.models.sampling import SamplingConfig  # noqa: E402
from domainspec.eval.datafiles import EvalDataError  # noqa: E402
from domainspec.eval.generate import benchmark_run, generate_for_benchmark, resolve_style  # noqa: E402

PROMPTS = ["def add(a, b):\n", "import os\n" * 12 + "x = 1\n", "Question: what is 2+3?\nAnswer:"]


@pytest.fixture(scope="module")
def backend():
    return make_backend("hf")  # the cached tiny default


def test_greedy_is_deterministic_and_batch_invariant(backend):
    params = SamplingConfig(max_new_tokens=24, batch_size=8)
    batched = backend.generate(PROMPTS, params)
    assert batched == backend.generate(PROMPTS, params)
    one_by_one = [backend.generate([p], params)[0] for p in PROMPTS]
    assert batched == one_by_one  # left padding + attention mask give each row its unpadded result
    assert all(len(c) == 1 and c[0] for c in batched)


def test_model_generation_defaults_do_not_leak(backend):
    """Instruct checkpoints ship generation defaults (repetition_penalty, top_k...); params alone decide."""
    params = SamplingConfig(max_new_tokens=16)
    before = backend.generate(PROMPTS[:1], params)
    cfg = backend.model.generation_config
    saved = (cfg.repetition_penalty, cfg.no_repeat_ngram_size)
    cfg.repetition_penalty, cfg.no_repeat_ngram_size = 3.0, 2
    try:
        assert backend.generate(PROMPTS[:1], params) == before
    finally:
        cfg.repetition_penalty, cfg.no_repeat_ngram_size = saved
    assert backend.model.generation_config is cfg


def test_stop_strings_are_trimmed(backend):
    free = backend.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=32))[0][0]
    stop = free[6:9]  # a piece of the greedy output itself, so the stop must trigger
    cut = free.index(stop)
    stopped = backend.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=32, stop=["\x00never", stop]))[0][0]
    assert stopped == free[:cut] and stop not in stopped
    assert trim_at_stop("a\nclass B\ndef", ["\ndef", "\nclass"]) == ("a", True)
    assert trim_at_stop("abc", ["x"]) == ("abc", False)


def test_n_samples_seeded_per_sample(backend):
    params = SamplingConfig(max_new_tokens=12, n=4, temperature=1.0, batch_size=3, seed=7)
    out = backend.generate(PROMPTS, params)
    assert [len(c) for c in out] == [4, 4, 4] and len(set(out[0])) > 1
    # independent of batch size, prompt order and of the samples drawn before (resume)
    assert backend.generate(PROMPTS[::-1], params.replace(batch_size=16))[::-1] == out
    tail = backend.generate(PROMPTS, params.replace(n=2), sample_start=[2, 2, 2])
    assert tail == [c[2:] for c in out]
    other_seed = backend.generate(PROMPTS, params.replace(seed=8))
    assert other_seed != out
    greedy = backend.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=8, n=3))[0]
    assert len(greedy) == 3 and len(set(greedy)) == 1
    assert sample_seed(0, "p", 1) != sample_seed(0, "p", 2)


def test_draw_tokens_follows_the_distribution_and_its_generator():
    import torch

    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 0.0, 2.0]])  # unnormalized rows are fine
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    draws = [draw_tokens(probs, gens) for _ in range(4000)]
    first = torch.bincount(torch.tensor([d[0] for d in draws]), minlength=4).float() / 4000
    assert first[1] == 0 and all(d[1] == 3 for d in draws)  # zero mass is never drawn
    assert torch.allclose(first, probs[0], atol=0.03)  # 4000 draws: 3 standard errors of 0.5 are 0.024
    # a row's tokens depend on its generator only, not on the rows beside it
    alone = [draw_tokens(probs[:1], [g]) for g in [torch.Generator().manual_seed(1)] for _ in range(50)]
    assert alone == [[d[0]] for d in draws[:50]]
    # top-p keeps the smallest set whose mass reaches it: 0.5 + 0.3 >= 0.7
    assert nucleus_probs(torch.log(probs[:1]), 1.0, 0.7)[0].tolist() == pytest.approx([0.5, 0.0, 0.3, 0.0])


def test_on_done_reports_each_prompt_once(backend):
    seen = {}
    out = backend.generate(PROMPTS, SamplingConfig(max_new_tokens=4, n=2, temperature=0.5, batch_size=1),
                           on_done=lambda i, c: seen.setdefault(i, c))
    assert seen == dict(enumerate(out))


def test_chat_template_and_bad_params(backend):
    text = backend.apply_chat_template([{"role": "user", "content": "hi"}])
    assert text.endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0.0)
    with pytest.raises(ValueError, match="empty stop"):
        SamplingConfig(stop=[""])
    with pytest.raises(NotImplementedError, match="vLLM"):
        make_backend("vllm")
    with pytest.raises(ValueError, match="unknown generation backend"):
        make_backend("tgi")


def test_style_resolution(backend):
    tok = backend.tokenizer
    assert resolve_style("auto", "tiny", tok) == "base"  # random weights, base tokenizer
    assert resolve_style("auto", "Qwen/Qwen2.5-Coder-7B-Instruct", tok) == "chat"
    assert resolve_style("chat", "tiny", tok) == "chat"


def run_generate(out, n=2, limit=2, temperature=0.8):
    """What `domainspec eval generate --benchmark humaneval --model tiny --style base` runs."""
    sampling = SamplingConfig(n=n, temperature=temperature, top_p=0.95, max_new_tokens=8, batch_size=4)
    return generate_for_benchmark(benchmark_run("humaneval", "tiny", sampling, limit=limit, style="base"), out)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_file_is_resumable(tmp_path):
    fresh, resumed = tmp_path / "fresh.jsonl", tmp_path / "resumed.jsonl"
    assert len(run_generate(fresh, n=3, limit=3)) == 9
    run_generate(resumed, n=1, limit=2)
    first = resumed.read_text()
    with open(resumed, "a") as f:
        f.write('{"task_id": "HumanEval/0", "sampl')  # a torn line from a killed run
    run_generate(resumed, n=3, limit=3)
    assert resumed.read_text().startswith(first)  # earlier rows untouched, torn line dropped
    key = lambda r: (r["task_id"], r["sample_index"])  # noqa: E731
    rows = _rows(resumed)
    assert len(rows) == len({key(r) for r in rows}) == 9
    assert sorted(_rows(fresh), key=key) == sorted(rows, key=key)  # same samples as one uninterrupted run
    assert {r["style"] for r in rows} == {"base"} and all(isinstance(r["completion"], str) for r in rows)
    run_generate(resumed, n=3, limit=3)  # nothing left to do
    assert len(_rows(resumed)) == 9
    with pytest.raises(EvalDataError, match="other generation settings"):
        run_generate(resumed, temperature=0.2)
