"""The ``openai`` generation backend against real servers on 127.0.0.1.

A real ``transformers serve`` subprocess serving the tiny default model checks parity with ``hf``, the
``eval generate`` -> ``eval score`` path and the start-up errors; a scripted stdlib server
(tests/openai_server.py) checks what only a scripted server can show: the request fields, retries,
the fleet's balance and a TIR transcript with tool calls.
"""
import json
import os

import pytest

pytest.importorskip("torch")
pytest.importorskip("openai")

from domainspec.common.cli import main  # noqa: E402
from domainspec.common.config import ConfigError  # noqa: E402
from domainspec.common.models.generation import make_backend, sample_seed  # noqa: E402
from domainspec.common.models.loading import ModelConfig, load_tokenizer, tiny_model_path  # noqa: E402
from domainspec.common.models.openai_backend import OpenAIBackend, ServerRequestError  # noqa: E402
from domainspec.common.models.sampling import SamplingConfig, ServerConfig  # noqa: E402
from openai_server import ScriptedServer, completion, transformers_server  # noqa: E402

PROMPTS = ["def add(a, b):\n", "import os\n" * 12 + "x = 1\n", "Question: what is 2+3?\nAnswer:"]
GSM8K_ROWS = [{"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
               "answer": f"He has {a} + {b} = {a + b} apples.\n#### {a + b}"} for a, b in [(2, 3), (4, 1), (7, 5)]]


@pytest.fixture(scope="module")
def served():
    """(base URL, served model name) of ``transformers serve`` running the tiny default model."""
    for module in ("fastapi", "uvicorn"):  # the test extra; CI installs it, so there it must be present
        try:
            __import__(module)
        except ImportError:
            if os.environ.get("CI", "").lower() in {"true", "1"}:
                pytest.fail(f"CI needs {module} (pip install -e '.[test]') for transformers serve", pytrace=False)
            pytest.skip(f"{module} not installed (pip install -e '.[test]')")
    path = str(tiny_model_path())
    with transformers_server(path) as url:
        yield url, path


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ModelConfig())


def openai_backend(url, model, **server):
    return make_backend(SamplingConfig(backend="openai", server=ServerConfig(base_urls=[url], model=model, **server)),
                        ModelConfig())


def test_greedy_completions_match_hf(served):
    url, model = served
    hf, api = make_backend("hf"), openai_backend(url, model)
    assert api.apply_chat_template([{"role": "user", "content": "hi"}]) == \
        hf.apply_chat_template([{"role": "user", "content": "hi"}])
    params = SamplingConfig(max_new_tokens=16, n=2)
    expected = hf.generate(PROMPTS, params)
    done = {}
    assert api.generate(PROMPTS, params, on_done=lambda i, c: done.setdefault(i, c)) == expected
    assert done == dict(enumerate(expected)) and all(len(c) == 2 for c in expected)
    stats = api.last_stats
    assert stats["sequences"] == 3 and 0 < stats["generated_tokens"] <= 48 and stats["tokens_per_second"] > 0
    assert sum(stats["finish_reasons"].values()) == 3 and stats["retries"] == 0
    # a stop string inside the greedy text: both cut before it (transformers serve keeps it in its text)
    stop = expected[2][0][6:9]
    stopped = params.replace(stop=["\x00never", stop], n=1)
    assert api.generate(PROMPTS, stopped) == hf.generate(PROMPTS, stopped)
    assert api.generate(PROMPTS, stopped)[2][0] == expected[2][0][:expected[2][0].index(stop)]
    assert api.last_stats["finish_reasons"].get("stop", 0) >= 1


def test_eval_generate_and_score_through_openai(served, tmp_path, capsys):
    url, model = served
    data, samples = tmp_path / "gsm8k.jsonl", tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    generate = ["eval", "generate", "--benchmark", "gsm8k", "--data", str(data), "--model", "tiny", "--n", "2",
                "--temperature", "0.7", "--max-new-tokens", "8", "--backend", "openai", "--server-url", url,
                "--served-model", model, "--out", str(samples)]
    assert main(generate) == 0
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert sorted((r["task_id"], r["sample_index"]) for r in rows) == [(str(t), k) for t in range(3) for k in range(2)]
    assert all(isinstance(r["completion"], str) for r in rows)
    first = samples.read_text()
    assert main(generate) == 0 and samples.read_text() == first  # resumed: nothing left to generate
    out = tmp_path / "scored"
    assert main(["eval", "score", "--benchmark", "gsm8k", "--samples", str(samples), "--data", str(data),
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["num_tasks"], summary["num_samples"]) == (3, 6)
    assert "gsm8k: 3 tasks, 6 samples" in capsys.readouterr().out


def _generate_fails(tmp_path, capsys, url, served_model):
    data, samples = tmp_path / "gsm8k.jsonl", tmp_path / "samples.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    rc = main(["eval", "generate", "--benchmark", "gsm8k", "--data", str(data), "--model", "tiny",
               "--max-new-tokens", "4", "--backend", "openai", "--server-url", url, "--served-model", served_model,
               "--out", str(samples)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("config error") == 1
    assert not samples.exists() or samples.read_text() == ""  # nothing written before the check
    return err


def test_stopped_server_is_one_clear_error(tmp_path, capsys):
    with ScriptedServer(lambda body, n: (200, completion("x"))) as server:
        url = server.url
    err = _generate_fails(tmp_path, capsys, url, "scripted")
    assert f"{url}: not reachable" in err and "is the server running?" in err


def test_wrong_model_is_one_clear_error(served, tmp_path, capsys):
    url, model = served
    err = _generate_fails(tmp_path, capsys, url, "Qwen/not-this-one")
    assert f"{url} does not serve the model 'Qwen/not-this-one'" in err and model in err


def test_sampling_fields_reach_the_server(tokenizer, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TEST_SERVER_KEY", "sekrit")
    with ScriptedServer(lambda body, n: (200, completion(f"s{body['seed']}STOP tail"))) as server:
        params = SamplingConfig(n=3, temperature=0.8, top_p=0.9, seed=5, stop=["STOP"], max_new_tokens=7)
        plain = OpenAIBackend(ServerConfig(base_urls=[server.url]), tokenizer, served_model="scripted")
        out = plain.generate(PROMPTS[:2], params, logprobs=2)
        assert out == [[f"s{sample_seed(5, p, k)}" for k in range(3)] for p in PROMPTS[:2]]
        bodies = server.completions()
        assert len(bodies) == 6 and {b["prompt"] for b in bodies} == set(PROMPTS[:2])
        assert all((b["model"], b["n"], b["temperature"], b["top_p"], b["max_tokens"], b["stop"], b["logprobs"]) ==
                   ("scripted", 1, 0.8, 0.9, 7, ["STOP"], 2) for b in bodies)
        assert plain.last_stats["finish_reasons"] == {"stop": 6}
        # resuming at sample 1 draws the same samples 1 and 2
        assert plain.generate(PROMPTS[:2], params.replace(n=2), sample_start=[1, 1]) == [c[1:] for c in out]
        keyed = OpenAIBackend(ServerConfig(base_urls=[server.url], api_key_env="TEST_SERVER_KEY"), tokenizer,
                              served_model="scripted")
        keyed.generate(PROMPTS[:1], params.replace(n=1))
    auth = [{k.lower(): v for k, v in headers.items()}.get("authorization") for _, _, headers in server.requests]
    assert auth[:11] == [None] * 11  # /models + 10 completions, no key set: no header at all
    assert auth[11:] == ["Bearer sekrit"] * 2


def test_fleet_goes_to_the_least_busy_server(tokenizer):
    reply = lambda body, n: (200, completion("ok then", tokens=None))  # noqa: E731
    with ScriptedServer(reply, delay_s=0.05) as a, ScriptedServer(reply, delay_s=0.05) as b:
        backend = OpenAIBackend(ServerConfig(base_urls=[a.url, b.url], max_concurrency=2), tokenizer,
                                served_model="scripted")
        out = backend.generate([f"prompt {i}" for i in range(12)], SamplingConfig(max_new_tokens=2))
    assert out == [["ok then"]] * 12
    assert backend.last_stats["generated_tokens"] == 12 * len(tokenizer("ok then")["input_ids"])  # no usage: counted
    assert len(a.completions()) + len(b.completions()) == 12 and min(len(a.completions()), len(b.completions())) >= 4
    assert a.max_in_flight <= 2 and b.max_in_flight <= 2 and max(a.max_in_flight, b.max_in_flight) == 2


def test_retries_5xx_but_not_400(tokenizer):
    flaky = lambda body, n: (503, {"detail": "loading"}) if n < 2 else (200, completion("fine"))  # noqa: E731
    with ScriptedServer(flaky) as server:
        backend = OpenAIBackend(ServerConfig(base_urls=[server.url], max_retries=3), tokenizer, served_model="scripted")
        assert backend.generate(["p"], SamplingConfig(max_new_tokens=4)) == [["fine"]]
        assert len(server.completions()) == 3 and backend.last_stats["retries"] == 2
    bad = lambda body, n: (400, {"object": "error", "message": "max_tokens is too large"})  # noqa: E731
    with ScriptedServer(bad) as server:
        backend = OpenAIBackend(ServerConfig(base_urls=[server.url], max_retries=3), tokenizer, served_model="scripted")
        seen = []
        with pytest.raises(ServerRequestError, match=r"prompt 0 .*\(not retried\): HTTP 400: max_tokens is too large") as e:
            backend.generate(["p"], SamplingConfig(max_new_tokens=4), on_done=lambda i, c: seen.append(i))
        assert server.url in str(e.value) and len(server.completions()) == 1 and seen == []


def test_tir_transcript_through_openai(tokenizer):
    from domainspec.common.sandbox.pool import Sandbox, SandboxConfig
    from domainspec.math.tir import build_prompt, run_tir

    script = ["Let me compute.\n```python\nprint(6 * 7)\n```", "So add one.\n```python\nprint(42 + 1)\n```",
              "The answer is $\\boxed{43}$."]

    def reply(body, n):  # the answer depends on how many tool outputs the prompt already holds
        return 200, completion(script[body["prompt"].count("```output")])

    with ScriptedServer(reply) as server, Sandbox(SandboxConfig(timeout_s=5, workers=1)) as sandbox:
        backend = OpenAIBackend(ServerConfig(base_urls=[server.url]), tokenizer, served_model="scripted")
        prompt = build_prompt(backend, "What is 6 * 7 + 1?", "tir")
        trace = run_tir(backend, [prompt], SamplingConfig(max_new_tokens=64), sandbox)[0][0]
    calls = server.completions()
    assert len(calls) == 3 and all("```output" in c["stop"] for c in calls)
    assert calls[0]["prompt"] == prompt and all(c["prompt"].startswith(prompt + script[0]) for c in calls[1:])
    assert "```output\n42\n```" in calls[1]["prompt"] and "```output\n43\n```" in calls[2]["prompt"]
    assert [(c.output, c.status) for c in trace.tool_calls] == [("42", "passed"), ("43", "passed")]
    assert trace.response.endswith("\\boxed{43}$.") and trace.finish == "stop"


def test_construction_needs_servers_and_a_model(tokenizer):
    with pytest.raises(ConfigError, match="base_urls"):
        OpenAIBackend(None, tokenizer, served_model="m")
    with ScriptedServer(lambda body, n: (200, completion("x"))) as server:
        with pytest.raises(ConfigError, match="served model"):
            OpenAIBackend(ServerConfig(base_urls=[server.url]), tokenizer)
    with pytest.raises(ConfigError, match="no such model folder"):
        load_tokenizer(ModelConfig(name_or_path="/no/such/model"))
