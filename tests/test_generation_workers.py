"""`sampling.workers`: the hf backend in local worker processes gives one process's completions."""
import pytest

pytest.importorskip("torch")

from domainspec.common.models.generation import make_backend  # noqa: E402
from domainspec.common.models.loading import ModelConfig  # noqa: E402
from domainspec.common.models.sampling import SamplingConfig  # noqa: E402
from domainspec.common.models.worker_pool import WorkerError, WorkerPoolBackend  # noqa: E402

PROMPTS = ["def add(a, b):\n", "import os\n" * 12 + "x = 1\n", "Question: what is 2+3?\nAnswer:",
           "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "class A:\n"]


@pytest.fixture(scope="module")
def pool():
    backend = make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny"))
    yield backend
    backend.close()


def test_workers_give_the_completions_of_one_process(pool):
    assert isinstance(pool, WorkerPoolBackend)
    one = make_backend("hf")
    for params in [SamplingConfig(max_new_tokens=16, batch_size=4),
                   SamplingConfig(max_new_tokens=20, n=3, temperature=0.8, top_p=0.9, seed=5, batch_size=5,
                                  stop=["\n\n"])]:
        seen = {}
        out = pool.generate(PROMPTS, params.replace(workers=2), sample_start=[0, 1, 2, 3, 4],
                            on_done=lambda i, c: seen.setdefault(i, c))
        assert out == one.generate(PROMPTS, params, sample_start=[0, 1, 2, 3, 4])
        assert seen == dict(enumerate(out))  # every prompt reported once, at its own index
    assert pool.last_stats["workers"] == 2 and pool.last_stats["generated_tokens"] > 0
    assert pool.apply_chat_template([{"role": "user", "content": "hi"}]) == one.apply_chat_template(
        [{"role": "user", "content": "hi"}])


def test_a_dead_worker_stops_the_call_with_its_exit_code():
    backend = make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny"))
    backend._procs[1].kill()
    backend._procs[1].join()
    with pytest.raises(WorkerError, match=r"worker 1 \(exit code -9\)"):
        backend.generate(PROMPTS, SamplingConfig(max_new_tokens=8))
    with pytest.raises(WorkerError, match="closed"):
        backend.generate(PROMPTS, SamplingConfig(max_new_tokens=8))


def test_leaving_a_with_block_stops_the_workers():
    """Every backend is a context manager; the worker pool's exit stops its processes (the math loop and
    the eval stage sample inside one, so a round's workers are gone before its training starts)."""
    with make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny")) as backend:
        procs = list(backend._procs)
        assert [p.is_alive() for p in procs] == [True, True]
    assert [p.is_alive() for p in procs] == [False, False] and backend._procs == []
    with make_backend("hf") as one:  # nothing to release: close() is a no-op, the backend stays usable
        pass
    assert one.generate(["x = 1\n"], SamplingConfig(max_new_tokens=2))


def test_workers_refused_where_they_cannot_work(monkeypatch):
    with pytest.raises(ValueError, match="server.max_concurrency"):
        SamplingConfig(workers=2, backend="openai", server={"base_urls": ["http://127.0.0.1:1/v1"]})
    one = make_backend("hf")
    with pytest.raises(ValueError, match="pass a ModelConfig"):
        make_backend(SamplingConfig(workers=2), model=one.model, tokenizer=one.tokenizer)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="launcher's ranks"):
        make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny"))
