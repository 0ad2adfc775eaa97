"""TIR inference (math/tir.py) on hand-written response streams, with the real sandbox."""
import time

import pytest

from domainspec.common.models.sampling import SamplingConfig
from domainspec.common.sandbox.pool import Sandbox, SandboxConfig
from domainspec.eval.grader.math_grader import MathGrader
from domainspec.math.tir import (MAX_CALLS_NOTICE, TIRConfig, build_prompt, extract_program, format_tool_output,
                                 infer, run_tir, wants_tool_call)
from test_math_fakes import ScriptedBackend

THREE_CALLS = [
    "First add.\n```python\nprint(2 + 3)\n```\n```output",
    "\nNow square it.\n```python\nx = 5\nprint(x ** 2)\n```\n```output",
    "\nFinally divide.\n```python\nprint(25 // 5)\n```\n```output",
    "\nSo the answer is \\boxed{5}.",
]
EXPECTED = ("First add.\n```python\nprint(2 + 3)\n```\n```output\n5\n```\n"
            "\nNow square it.\n```python\nx = 5\nprint(x ** 2)\n```\n```output\n25\n```\n"
            "\nFinally divide.\n```python\nprint(25 // 5)\n```\n```output\n5\n```\n"
            "\nSo the answer is \\boxed{5}.")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(timeout_s=5, workers=2)) as sb:
        yield sb


def test_three_tool_calls_give_the_exact_transcript_and_finished_rows_leave_the_batch(sandbox):
    backend = ScriptedBackend({"Q-three": THREE_CALLS, "Q-plain": ["4 + 4 = 8, so \\boxed{8}."]})
    prompts = [build_prompt(backend, q, "tir") for q in ("Q-three", "Q-plain")]
    traces = run_tir(backend, prompts, SamplingConfig(max_new_tokens=64), sandbox)
    t = traces[0][0]
    assert t.response == EXPECTED
    assert [c.output for c in t.tool_calls] == ["5", "25", "5"]
    assert [c.status for c in t.tool_calls] == ["passed"] * 3
    assert t.tool_calls[1].code == "x = 5\nprint(x ** 2)\n"
    assert traces[1][0].response == "4 + 4 = 8, so \\boxed{8}." and traces[1][0].tool_calls == []
    # batch 1 holds both problems; the plain one finished, so the continuations hold only one row
    assert [len(b) for b in backend.batches] == [2, 1, 1, 1]
    assert all("```output" in p.stop for p in backend.params_seen)
    assert MathGrader().grade(t.response, "5").correct


def test_infinite_loop_and_crash_yield_answers_within_the_time_bound(sandbox):
    backend = ScriptedBackend({
        "Q-loop": ["```python\nwhile True:\n    pass\n```\n```output", "\nIt timed out; I guess \\boxed{0}."],
        "Q-crash": ["```python\nprint(1/0)\n```\n```output", "\nDivision failed, so \\boxed{1}."],
        "Q-syntax": ["```python\nprint(1 +\n```\n```output", "\n\\boxed{2}"],
        "Q-exit": ["```python\nimport os\nos._exit(3)\n```\n```output", "\n\\boxed{3}"],
    })
    qs = ["Q-loop", "Q-crash", "Q-syntax", "Q-exit"]
    start = time.monotonic()
    out = run_tir(backend, [build_prompt(backend, q, "tir") for q in qs], SamplingConfig(), sandbox,
                  TIRConfig(tool_timeout_s=1.5))
    elapsed = time.monotonic() - start
    loop, crash, syntax, exit_ = (o[0] for o in out)
    assert loop.tool_calls[0].status == "timeout" and "```output\nTimeout Error\n```" in loop.response
    assert crash.tool_calls[0].output == "ZeroDivisionError: division by zero"
    assert syntax.tool_calls[0].output.startswith("SyntaxError")
    assert exit_.tool_calls[0].status == "failed"
    grader = MathGrader()
    assert [grader.grade(t.response, g).correct for t, g in zip((loop, crash, syntax, exit_), "0123")] == [True] * 4
    assert elapsed < 15, f"TIR took {elapsed:.1f}s with a 1.5s per-call limit"


def test_tool_call_limit_ends_with_qwen_notice(sandbox):
    call = "```python\nprint(7)\n```\n```output"
    backend = ScriptedBackend({"Q-greedy": [call, "\n" + call, "\n" + call, "\n" + call]})
    out = run_tir(backend, [build_prompt(backend, "Q-greedy", "tir")], SamplingConfig(), sandbox,
                  TIRConfig(max_tool_calls=2))[0][0]
    assert len(out.tool_calls) == 2 and out.finish == "max_tool_calls"
    assert out.response.endswith("```\n" + MAX_CALLS_NOTICE)
    assert MathGrader().grade(out.response, "7").correct  # the last number is the last tool output


class BrokenSandbox:
    def run_many(self, programs, timeout_s=None):
        raise RuntimeError("worker pool died")


def test_sandbox_failure_becomes_an_error_line_not_a_crash():
    backend = ScriptedBackend({"Q": ["```python\nprint(1)\n```\n```output", "\n\\boxed{1}"]})
    t = run_tir(backend, [build_prompt(backend, "Q", "tir")], SamplingConfig(), BrokenSandbox())[0][0]
    assert t.tool_calls[0].status == "error" and "worker pool died" in t.tool_calls[0].output
    assert t.response.endswith("\\boxed{1}")


def test_n_samples_each_continue_on_their_own(sandbox):
    streams = [["A```python\nprint(11)\n```\n```output", "\n\\boxed{11}"], ["B: \\boxed{12}"]]
    backend = ScriptedBackend({"Q-n": streams})
    out = run_tir(backend, [build_prompt(backend, "Q-n", "tir")], SamplingConfig(n=2, temperature=0.7), sandbox)[0]
    assert [t.response for t in out] == ["A```python\nprint(11)\n```\n```output\n11\n```\n\n\\boxed{11}", "B: \\boxed{12}"]
    assert backend.params_seen[0].n == 2 and backend.params_seen[1].n == 1


def test_cot_mode_uses_cot_system_prompt_and_tir_requires_sandbox():
    backend = ScriptedBackend({"Q": ["\\boxed{1}"]})
    assert infer(backend, ["Q"], "cot", SamplingConfig()) == [["\\boxed{1}"]]
    assert "reason step by step" in backend.batches[0][0]
    with pytest.raises(ValueError, match="needs a sandbox"):
        infer(backend, ["Q"], "tir", SamplingConfig())


@pytest.mark.parametrize("text, program", [
    ("```python\na=1\n```\ntext\n```python\nb=2\nprint(b)\n```\n", "b=2\nprint(b)\n"),
    ("no code", ""),
    ("```python\nunclosed = 1", "unclosed = 1\n"),
])
def test_extract_program_takes_the_last_block(text, program):
    assert extract_program(text) == program


@pytest.mark.parametrize("chunk, wanted", [
    ("```python\nprint(1)\n```\n", True), ("so \\boxed{2}\n```", False), ("plain text", False)])
def test_wants_tool_call(chunk, wanted):
    assert wants_tool_call(chunk) is wanted


def test_tool_output_is_clipped():
    from types import SimpleNamespace
    res = SimpleNamespace(status="passed", stdout="x" * 5000, stderr="")
    out = format_tool_output(res, max_chars=100)
    assert len(out) < 140 and "chars cut" in out
