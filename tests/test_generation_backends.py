"""`hf` (prompt computed once) and `hf-cb` (transformers continuous batching) on the tiny default model.

The reference is the per-row path `hf` replaced (every (prompt, sample) row prefilled by its own
`model.generate` row, sampled through a one-hot logits processor), kept here: greedy and seeded
completions must match it token for token, and `hf-cb` must match `hf`.
"""
import pytest

torch = pytest.importorskip("torch")

from domainspec.common.models.continuous_batching import CBBackend, request_row  # noqa: E402
from domainspec.common.models.generation import (HFBackend, end_of_turn_ids, make_backend, sample_rows,
                                                  sample_seed)  # noqa: E402
from domainspec.common.models.sampling import SamplingConfig  # noqa: E402

PROMPTS = ["def add(a, b):\n", "import os\n" * 12 + "x = 1\n", "Question: what is 2+3?\nAnswer:",
           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"]


class PerRowReference(HFBackend):
    """The former `hf` path: each row its own prefill inside `model.generate`, per-row seeded one-hot sampling."""

    def _run_rows(self, rows, prompts, encoded, starts, params, done) -> int:
        for b in range(0, len(rows), params.batch_size):
            batch = rows[b:b + params.batch_size]
            seeds = [sample_seed(params.seed, prompts[i], starts[i] + k) for i, k in batch]
            for (i, k), text in zip(batch, self._generate_rows([encoded[i] for i, _ in batch], seeds, params)):
                done.add(i, k, text)
        return 0

    def _generate_rows(self, token_lists, seeds, params):
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        pad, width = self.tokenizer.pad_token_id, max(len(t) for t in token_lists)
        ids = torch.tensor([[pad] * (width - len(t)) + t for t in token_lists])
        mask = torch.tensor([[0] * (width - len(t)) + [1] * len(t) for t in token_lists])
        gen_cfg = GenerationConfig(max_new_tokens=params.max_new_tokens, do_sample=False, num_beams=1,
                                   eos_token_id=self.eos_token_ids, pad_token_id=pad)
        generators = [torch.Generator().manual_seed(s) for s in seeds]

        def one_hot_sample(input_ids, scores):
            picks = torch.tensor(sample_rows(scores, generators, params.temperature, params.top_p))
            out = torch.full_like(scores, float("-inf"))
            out[torch.arange(len(picks)), picks] = 0.0
            return out

        def stop_on_text(input_ids, scores, **kwargs):
            window = 4 * max(len(s) for s in params.stop) + 2
            tails = self.tokenizer.batch_decode(input_ids[:, width:][:, -window:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in params.stop) for t in tails])

        saved, self.model.generation_config = self.model.generation_config, GenerationConfig()
        try:
            with torch.inference_mode():
                out = self.model.generate(
                    input_ids=ids, attention_mask=mask, generation_config=gen_cfg,
                    logits_processor=LogitsProcessorList([one_hot_sample] if params.temperature > 0 else []),
                    stopping_criteria=StoppingCriteriaList([stop_on_text] if params.stop else []))
        finally:
            self.model.generation_config = saved
        return [self._text(row, params.stop)[0] for row in out[:, width:].tolist()]


@pytest.fixture(scope="module")
def hf():
    return make_backend("hf")  # the cached tiny default


@pytest.fixture(scope="module")
def cb(hf):
    return CBBackend(hf.model, hf.tokenizer)


@pytest.fixture(scope="module")
def stop(hf):
    free = hf.generate(PROMPTS[:1], SamplingConfig(max_new_tokens=32))[0][0]
    return free[6:9]  # a piece of the greedy output itself, so the stop triggers


def _cases(stop):
    return [SamplingConfig(max_new_tokens=24, batch_size=8),
            SamplingConfig(max_new_tokens=24, batch_size=3, n=2, stop=[stop]),
            SamplingConfig(max_new_tokens=30, n=4, temperature=0.7, batch_size=3, seed=7, stop=["\n", stop]),
            SamplingConfig(max_new_tokens=20, n=4, temperature=0.7, top_p=0.9, batch_size=16, seed=1)]


def test_prompt_once_reproduces_the_per_row_path(hf, stop):
    reference = PerRowReference(hf.model, hf.tokenizer)
    for params in _cases(stop):
        expected = reference.generate(PROMPTS, params, sample_start=[0, 1, 2, 3])
        assert hf.generate(PROMPTS, params, sample_start=[0, 1, 2, 3]) == expected, params


def test_each_prompt_is_prefilled_once_and_finished_rows_leave(hf):
    shapes = []
    hook = hf.model.register_forward_hook(lambda m, args, kwargs, out: shapes.append(kwargs["input_ids"].shape),
                                          with_kwargs=True)
    try:
        out = hf.generate(PROMPTS[:2], SamplingConfig(max_new_tokens=40, n=4, temperature=0.7, batch_size=8,
                                                      stop=["\n", " "]))
    finally:
        hook.remove()
    assert [len(c) for c in out] == [4, 4]
    assert shapes[0][0] == 2 and shapes[0][1] > 1  # one prefill row per prompt, not per sample
    decode_rows = [s[0] for s in shapes[1:]]
    assert all(s[1] == 1 for s in shapes[1:]) and max(decode_rows) == 8 and min(decode_rows) < 8


def test_end_of_turn_token_stops_generation(hf):
    model, tok = hf.model, hf.tokenizer
    assert end_of_turn_ids(tok) == [tok.convert_tokens_to_ids("<|im_end|>")]
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id  # an SFT checkpoint that never names <|im_end|>
    try:
        backend = HFBackend(model, tok)
    finally:
        model.generation_config.eos_token_id = saved
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    assert eot in backend.eos_token_ids
    params = SamplingConfig(max_new_tokens=12)
    calls = []

    def say_end_of_turn(module, args, kwargs, out):  # the 4th token is <|im_end|>
        calls.append(1)
        if len(calls) == 4:
            out.logits[:, -1, eot] = 1e4

    expected = backend.generate(PROMPTS[:1], params.replace(max_new_tokens=3))
    hook = model.register_forward_hook(say_end_of_turn, with_kwargs=True)
    try:
        assert backend.generate(PROMPTS[:1], params) == expected
    finally:
        hook.remove()
    assert backend.last_stats["generated_tokens"] == 4


def test_cb_greedy_and_seeded_equal_hf(hf, cb, stop):
    for params in _cases(stop):
        assert cb.generate(PROMPTS, params, sample_start=[0, 1, 2, 3]) == \
            hf.generate(PROMPTS, params, sample_start=[0, 1, 2, 3]), params


def test_cb_resume_on_done_and_stop_strings(cb, stop):
    params = SamplingConfig(max_new_tokens=16, n=3, temperature=0.8, seed=3, stop=[stop])
    seen = {}
    full = cb.generate(PROMPTS[:3], params, progress=True, on_done=lambda i, c: seen.setdefault(i, c))
    assert seen == dict(enumerate(full)) and all(len(c) == 3 for c in full)
    assert not any(stop in text for c in full for text in c)
    assert cb.generate(PROMPTS[:3], params.replace(n=1), sample_start=[2, 2, 2]) == [c[2:] for c in full]
    assert cb.last_stats["sequences"] == 3 and cb.last_stats["generated_tokens"] > 0
    assert request_row("5") == (5, 0) and request_row("5__child#2") == (5, 3)
    assert cb.generate([], params) == []


def test_cb_refuses_models_it_cannot_run():
    class NoCB:
        pass

    with pytest.raises(RuntimeError, match="no continuous batching"):
        CBBackend(NoCB(), None)
