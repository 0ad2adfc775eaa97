"""Chain-of-thought (CoT) and tool-integrated reasoning (TIR) inference for any causal LM.

Both go through a :class:`domainspec.common.models.generation.GenerationBackend`; prompts are final
strings (chat template applied) so TIR can append tool output and continue generating.

TIR protocol (Qwen2.5-Math evaluation, ``math_eval.py`` + ``python_executor.py``):

1. generate with the extra stop string ````` ```output `````;
2. a chunk that (after ``rstrip``) ends with ````` ``` ````` and holds no ``\\boxed`` is a tool call:
   the *last* ```` ```python ```` block of the response so far is executed in the shared
   sandbox (``Sandbox.run_many`` for the whole batch);
3. its stdout (or the error's last line, or ``Timeout Error``) is appended as
   ``"\\n```output\\n...\\n```\\n"`` and generation continues;
4. at most ``max_tool_calls`` executions (Qwen uses 4). Unlike Qwen, whose loop runs
   ``max_func_call`` generation rounds so the last call's output is never read, every executed
   call here is followed by one more generation; a request past the limit ends the sequence
   with the note ``Reach max function call limit.`` (Qwen's wording).

Finished sequences leave the batch; the rest continue. Model-written code runs only inside the
sandbox with a per-call time limit, and an executor failure becomes an error line in the
transcript, so nothing a model writes can crash the run. This module does not grade answers
(see ``domainspec.eval.grader.math_grader``) and does not sandbox anything itself.

Usage::

    prompts = [build_prompt(backend, q, "tir") for q in questions]
    traces = run_tir(backend, prompts, params, sandbox)      # list (per prompt) of lists (n samples)
    responses = run_cot(backend, [build_prompt(backend, q, "cot") for q in questions], params)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.models.sampling import SamplingConfig
from domainspec.math.prompts import COT_SYSTEM_PROMPT, TIR_SYSTEM_PROMPT

Mode = Literal["cot", "tir"]
OUTPUT_STOP = "```output"
TIMEOUT_NOTICE = "Timeout Error"  # Qwen2.5-Math python_executor's wording
MAX_CALLS_NOTICE = "\nReach max function call limit."  # Qwen2.5-Math math_eval.py's wording


class TIRConfig(Config):
    max_tool_calls: int = Field(4, ge=0, description="Most code executions per response (Qwen2.5-Math uses 4).")
    tool_timeout_s: float = Field(10.0, gt=0, description="Wall-clock limit of one code execution, seconds.")
    max_output_chars: int = Field(1000, ge=16, description="Tool output longer than this is cut (head and tail kept) "
                                                           "before it is appended to the response.")


def system_prompt(mode: Mode) -> str:
    if mode == "cot":
        return COT_SYSTEM_PROMPT
    if mode == "tir":
        return TIR_SYSTEM_PROMPT
    raise ValueError(f"inference mode must be 'cot' or 'tir', got {mode!r}")


def build_messages(question: str, mode: Mode) -> list[dict]:
    """Qwen2.5-Math prompt layout: the mode's system prompt, then the question as the user turn."""
    return [{"role": "system", "content": system_prompt(mode)}, {"role": "user", "content": question}]


def build_prompt(backend: Any, question: str, mode: Mode) -> str:
    """Final prompt string (chat template with the assistant header) for one question."""
    return backend.apply_chat_template(build_messages(question, mode))


# ---------------------------------------------------------------- pure text helpers


def extract_program(text: str) -> str:
    """The last ```python block of ``text`` (Qwen2.5-Math ``extract_program`` with last_only=True)."""
    program, inside = "", False
    for line in text.split("\n"):
        if line.startswith("```python") or line.endswith("```python"):
            program, inside = "", True  # a new block starts: only the last one counts
        elif line.startswith("```"):
            inside = False
        elif inside:
            program += line + "\n"
    return program


def wants_tool_call(chunk: str) -> bool:
    """Did this generated chunk stop on ```output after a closed code block? (Qwen's test.)"""
    return "boxed" not in chunk and chunk.rstrip().endswith("```")


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n...[{len(text) - 2 * half} chars cut]...\n{text[-half:]}"


def format_tool_output(result: Any, max_chars: int = 1000) -> str:
    """What the model sees from one execution: stdout, else the error's last line, else a notice.

    ``result`` is a ``domainspec.common.sandbox.pool.ExecResult`` (duck-typed: ``status``, ``stdout``,
    ``stderr``).
    """
    status = getattr(result.status, "value", result.status)
    if status == "timeout":
        text = TIMEOUT_NOTICE
    elif status == "passed":
        text = result.stdout.strip() or "Done"  # Qwen shows its report ("Done") for empty stdout
    else:
        text = _last_line(result.stderr) or _last_line(result.stdout) or f"Error: execution {status}"
    return _clip(text, max_chars)


def output_block(text: str) -> str:
    return f"\n```output\n{text}\n```\n"


# ---------------------------------------------------------------- inference


@dataclass
class ToolCall:
    code: str
    output: str  # exactly what was appended inside the ```output block
    status: str  # sandbox status: passed / failed / timeout / error


@dataclass
class TIRTrace:
    """One TIR sample: the full response after the prompt and the calls made on the way."""
    response: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str = "stop"  # "stop" (model ended) or "max_tool_calls"


def run_cot(backend: Any, prompts: Sequence[str], params: SamplingConfig, progress: bool = False,
            sample_start: Sequence[int] | None = None) -> list[list[str]]:
    """Plain CoT: one generation per prompt, ``params.n`` samples each."""
    return backend.generate(list(prompts), params, progress=progress, sample_start=sample_start)


def _execute(sandbox: Any, programs: list[str], timeout_s: float) -> list[Any]:
    """Run a batch of model programs; an infrastructure failure becomes an error result per program."""
    try:
        results = sandbox.run_many(programs, timeout_s=timeout_s)
        if len(results) != len(programs):
            raise RuntimeError(f"sandbox returned {len(results)} results for {len(programs)} programs")
        return results
    except Exception as e:  # the run must survive anything model code provokes
        msg = f"{type(e).__name__}: {e}"
        return [_Failed(msg) for _ in programs]


@dataclass
class _Failed:
    stderr: str
    status: str = "error"
    stdout: str = ""


def run_tir(backend: Any, prompts: Sequence[str], params: SamplingConfig, sandbox: Any,
            config: TIRConfig | None = None, progress: bool = False,
            sample_start: Sequence[int] | None = None) -> list[list[TIRTrace]]:
    """TIR for a batch of prompts; returns ``params.n`` traces per prompt.

    The first call samples ``n`` completions per prompt; every continuation is one completion
    (n=1) of its own sequence, batched across all sequences still running.
    """
    cfg = config or TIRConfig()
    stops = list(getattr(params, "stop", None) or [])
    if OUTPUT_STOP not in stops:
        stops.append(OUTPUT_STOP)
    first = params.replace(stop=stops)
    cont = params.replace(stop=stops, n=1)

    chunks = backend.generate(list(prompts), first, progress=progress, sample_start=sample_start)
    traces = [[TIRTrace(response=c) for c in per] for per in chunks]
    # sequences still running: (prompt index, sample index); the newest chunk decides
    active = [(i, j) for i, per in enumerate(chunks) for j in range(len(per))]
    last_chunk = {(i, j): chunks[i][j] for i, j in active}

    calls = 0
    while active:
        wanting = [key for key in active if wants_tool_call(last_chunk[key])]
        if not wanting:
            break
        if calls >= cfg.max_tool_calls:
            for i, j in wanting:
                traces[i][j].response += MAX_CALLS_NOTICE
                traces[i][j].finish = "max_tool_calls"
            break
        calls += 1
        programs = [extract_program(traces[i][j].response) for i, j in wanting]
        results = _execute(sandbox, programs, cfg.tool_timeout_s)
        for (i, j), code, res in zip(wanting, programs, results):
            out = format_tool_output(res, cfg.max_output_chars)
            t = traces[i][j]
            t.response = t.response.rstrip() + output_block(out)
            t.tool_calls.append(ToolCall(code=code, output=out, status=str(getattr(res.status, "value", res.status))))
        # finished sequences leave the batch; the rest continue from prompt + response so far
        active = wanting
        new = backend.generate([prompts[i] + traces[i][j].response for i, j in active], cont, progress=progress)
        for (i, j), per in zip(active, new):
            chunk = per[0] if per else ""
            traces[i][j].response += chunk
            last_chunk[(i, j)] = chunk
    return traces


def infer(backend: Any, questions: Sequence[str], mode: Mode, params: SamplingConfig, sandbox: Any = None,
          config: TIRConfig | None = None, progress: bool = False,
          sample_start: Sequence[int] | None = None) -> list[list[str]]:
    """Responses (``params.n`` per question) in ``mode``; TIR needs a sandbox.
    ``sample_start[i]``: the sample index of question i's first response (resuming)."""
    prompts = [build_prompt(backend, q, mode) for q in questions]
    if mode == "cot":
        return run_cot(backend, prompts, params, progress=progress, sample_start=sample_start)
    if sandbox is None:
        raise ValueError("TIR inference needs a sandbox (domainspec.common.sandbox.pool.Sandbox)")
    traces = run_tir(backend, prompts, params, sandbox, config, progress=progress, sample_start=sample_start)
    return [[t.response for t in per] for per in traces]


def completer(backend: Any, mode: Mode, sandbox: Any = None, config: TIRConfig | None = None,
              progress: bool = False):
    """CoT/TIR inference as a completer of the one generate -> score path (``eval.generate.Completer``):
    each task's prompt is the question."""
    def complete(tasks, sampling, sample_start, on_done):
        outs = infer(backend, [t.prompt for t in tasks], mode, sampling, sandbox, config, progress, sample_start)
        if on_done is not None:
            for i, texts in enumerate(outs):
                on_done(i, list(texts))
        return outs
    return complete
