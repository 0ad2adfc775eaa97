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


def test_leaving_a_with_block_parks_the_workers_and_the_next_pool_loads_its_model_into_them(tmp_path):
    """Every backend is a context manager. On a CPU the pool's exit unloads the model and parks its
    processes; the next pool of the same shape loads its own model into them (same pids) and gives a fresh
    process's completions; a parked worker that died is not reused; stop_parked_workers ends them."""
    from domainspec.common.models.worker_pool import _PARKED, stop_parked_workers
    stop_parked_workers()
    params = SamplingConfig(max_new_tokens=12, n=2, temperature=0.8, seed=3)
    with make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny")) as backend:
        procs = list(backend._procs)
        assert [p.is_alive() for p in procs] == [True, True] and not backend.reused
    assert [p.is_alive() for p in procs] == [True, True] and backend._procs == []
    with pytest.raises(WorkerError, match="closed"):
        backend.generate(PROMPTS, params)
    other = ModelConfig(name_or_path="tiny", tiny={"hidden_size": 32, "num_hidden_layers": 1,
                                                   "intermediate_size": 64, "num_attention_heads": 2,
                                                   "num_key_value_heads": 1})
    with make_backend(SamplingConfig(workers=2), other) as again:
        assert again.reused and again.pids == [p.pid for p in procs]
        assert again.generate(PROMPTS, params) == make_backend("hf", other).generate(PROMPTS, params)
    procs[0].kill()
    procs[0].join()
    with make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny")) as fresh:
        assert not fresh.reused and not set(fresh.pids) & {p.pid for p in procs}
    assert not procs[1].is_alive()  # the crew with the dead worker was stopped, not parked again
    parked = [p for crews in _PARKED.values() for c in crews for p in c.procs]
    assert len(parked) == 2 and all(p.is_alive() for p in parked)
    stop_parked_workers()
    assert not any(p.is_alive() for p in parked)
    with make_backend("hf") as one:  # nothing to release: close() is a no-op, the backend stays usable
        pass
    assert one.generate(["x = 1\n"], SamplingConfig(max_new_tokens=2))


def test_a_pool_left_mid_call_is_stopped_not_parked():
    from domainspec.common.models.worker_pool import _PARKED, stop_parked_workers
    stop_parked_workers()

    def boom(i, texts):
        raise KeyboardInterrupt

    backend = make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny"))
    procs = list(backend._procs)
    with pytest.raises(KeyboardInterrupt):
        with backend:
            backend.generate(PROMPTS, SamplingConfig(max_new_tokens=8), on_done=boom)
    assert not any(p.is_alive() for p in procs) and not any(_PARKED.values())


def test_workers_refused_where_they_cannot_work(monkeypatch):
    with pytest.raises(ValueError, match="server.max_concurrency"):
        SamplingConfig(workers=2, backend="openai", server={"base_urls": ["http://127.0.0.1:1/v1"]})
    one = make_backend("hf")
    with pytest.raises(ValueError, match="pass a ModelConfig"):
        make_backend(SamplingConfig(workers=2), model=one.model, tokenizer=one.tokenizer)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="launcher's ranks"):
        make_backend(SamplingConfig(workers=2), ModelConfig(name_or_path="tiny"))
