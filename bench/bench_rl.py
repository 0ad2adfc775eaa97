"""RL after SFT against an SFT control of the same budget: GRPO (math) and DPO from execution feedback (coder).

    python bench/bench_rl.py --math-policy runs/math/loop/policy --coder-policy runs/coder/sft/final --out /tmp/rl

Math: GRPO with the embedded default (math/default_grpo.yaml, the `grpo` stage of pipelines.yaml) from the
math loop's final SFT policy, scored by greedy pass@1 of the one grader on the loop's held-out set; the
control fine-tunes the same starting policy on the reference solutions of the same prompts GRPO sampled,
for the same number of optimizer steps, once at GRPO's LR and once at the loop's round-SFT LR (5e-4).
Coder: DPO with coder/default_dpo.yaml from the Coder SFT model, scored by held-out toy pass@1; the control
fine-tunes on the reference solutions of the same tasks for the same steps (DPO's LR, and the exec_checked
SFT stage's 1e-3). Prints one table per domain (and writes ``results.json``). Not a test; minutes on a CPU.

``--coder-val N`` scores the coder rows on a validation split instead of the held-out toy set: the N
training-split toy tasks that follow the DPO pool (tasks ``num .. num+N`` of ``tasks.seed``: never paired,
never in the held-out split), for choosing DPO settings without touching the held-out set.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _math(policy: str, out: Path, overrides: list[str]) -> dict:
    from domainspec.common.artifacts import read_jsonl_rows
    from domainspec.common.config import load_config
    from domainspec.common.models.generation import make_backend
    from domainspec.common.models.loading import ModelConfig
    from domainspec.math.evaluation import evaluate
    from domainspec.math.grpo import GRPOConfig, health_table, run_grpo
    from domainspec.math.rejection_sampling import sft_row
    from domainspec.math.sft import sft_on_conversations
    cfg = load_config(GRPOConfig, ROOT / "math" / "default_grpo.yaml", [f"model.name_or_path={policy}"] + overrides)
    t0 = time.perf_counter()
    grpo = run_grpo(cfg, out / "grpo")
    grpo_s = time.perf_counter() - t0
    train = {p["id"]: p for p in read_jsonl_rows(out / "grpo" / "data" / "train.jsonl")}
    used = [g["id"] for k in range(cfg.iterations)
            for g in read_jsonl_rows(out / "grpo" / f"iter_{k}" / "samples.jsonl")]
    convs = [sft_row(train[i]["question"], train[i]["solution"], "cot")["messages"] for i in used]
    heldout = read_jsonl_rows(out / "grpo" / "data" / "heldout.jsonl")
    steps = grpo["updates"]
    rows = [{"model": "start (math loop SFT policy)", "pass@1": grpo["heldout_pass@1"]["start"], "steps": 0},
            {"model": f"GRPO ({cfg.reward.preset})", "pass@1": grpo["heldout_pass@1"]["end"], "steps": steps,
             "seconds": round(grpo_s)}]
    for lr in sorted({cfg.train.lr, 5e-4}):
        t0 = time.perf_counter()
        # the same steps over the same prompts' reference solutions (one pass: packed rows split over the steps)
        tc = cfg.train.model_copy(update={"lr": lr, "max_steps": steps, "global_batch_size": 4, "micro_batch_size": 4,
                                          "save_every": 0, "log_every": 10})
        final = sft_on_conversations(policy, convs, tc, 512, out / f"control_lr{lr:g}")
        backend = make_backend(cfg.eval.sampling, ModelConfig(name_or_path=str(final)))
        res = evaluate(backend, heldout, cfg.eval, out / f"control_lr{lr:g}" / "eval", "heldout")
        rows.append({"model": f"control: SFT on reference solutions, lr {lr:g}", "pass@1": res["cot"]["pass@1"],
                     "steps": steps, "seconds": round(time.perf_counter() - t0)})
    return {"rows": rows, "heldout_problems": len(heldout), "prompts_sampled": len(used),
            "health": health_table(grpo["health"]), "warnings": grpo["warnings"]}


def _validation_tasks(cfg, n: int, out: Path) -> Path:
    """The ``n`` training-split toy tasks after the DPO pool, as a HumanEval-format file."""
    from domainspec.coder.toy_tasks import generate_tasks, write_humaneval_jsonl
    if cfg.tasks.source != "toy":
        raise SystemExit("--coder-val needs tasks.source toy")
    tasks = generate_tasks(cfg.tasks.num + n, seed=cfg.tasks.seed, split="train")
    pool = [t.key for t in generate_tasks(cfg.tasks.num, seed=cfg.tasks.seed, split="train")]
    val = tasks[cfg.tasks.num:]
    # the pool is the prefix of the longer draw, whose instances are distinct: no validation task was paired
    if [t.key for t in tasks[:cfg.tasks.num]] != pool or set(pool) & {t.key for t in val}:
        raise SystemExit("--coder-val: the validation tasks overlap the DPO pool")
    return write_humaneval_jsonl(val, out / "validation_tasks.jsonl")


def _coder(policy: str, out: Path, overrides: list[str], val: int = 0) -> dict:
    from domainspec.common.artifacts import read_jsonl_rows
    from domainspec.common.config import load_config
    from domainspec.common.models.loading import ModelConfig
    from domainspec.common.recipes.sft import sft_train
    from domainspec.coder.dpo import DPOConfig, run_dpo
    from domainspec.coder.heldout_eval import evaluate_checkpoint, toy_heldout_file
    from domainspec.coder.sft_data import toy_rows
    from domainspec.coder.toy_tasks import generate_tasks
    cfg = load_config(DPOConfig, ROOT / "coder" / "default_dpo.yaml", [f"model.name_or_path={policy}"] + overrides)
    scored_on = f"{cfg.eval.toy_tasks} held-out toy tasks"
    if val:
        out.mkdir(parents=True, exist_ok=True)
        val_file, settings = _validation_tasks(cfg, val, out), cfg.eval.model_copy(update={"toy_tasks": val})
        scored_on = f"{val} validation tasks (training split, after the pool)"

        def score(model: str, d: Path) -> float:
            return evaluate_checkpoint(ModelConfig(name_or_path=model), settings, d,
                                       toy_data=val_file)["toy"]["metrics"]["pass@1"]
        cfg = cfg.model_copy(update={"eval_start": False, "eval": cfg.eval.model_copy(update={"toy_tasks": 0})})
    t0 = time.perf_counter()
    dpo = run_dpo(cfg, out / "dpo")
    dpo_s = time.perf_counter() - t0
    if val:
        dpo["toy_pass@1"] = {"start": score(policy, out / "val_start"), "end": score(dpo["final_model"], out / "val_dpo")}
    paired = {p["task_id"] for p in read_jsonl_rows(out / "dpo" / "pairs.jsonl")}
    tasks = [t for t in generate_tasks(cfg.tasks.num, seed=cfg.tasks.seed, split="train") if t.task_id in paired]
    convs = [r["messages"] for r in toy_rows(tasks)]
    steps = dpo["steps"]
    rows = [{"model": "start (Coder SFT model)", "pass@1": dpo["toy_pass@1"]["start"], "steps": 0},
            {"model": "DPO (execution feedback)", "pass@1": dpo["toy_pass@1"]["end"], "steps": steps,
             "seconds": round(dpo_s)}]
    for lr in sorted({cfg.train.lr, 1e-3}):
        t0 = time.perf_counter()
        tc = cfg.train.model_copy(update={"lr": lr, "max_steps": steps, "global_batch_size": 4, "micro_batch_size": 4,
                                          "save_every": 0, "log_every": 10, "epochs": 1.0})
        cdir = out / f"control_lr{lr:g}"
        result, _ = sft_train(ModelConfig(name_or_path=policy), convs, tc, 512, cdir, name="control SFT")
        if val:
            p1 = score(str(result.final_dir), cdir / "val")
        else:
            p1 = evaluate_checkpoint(ModelConfig(name_or_path=str(result.final_dir)), cfg.eval, cdir / "eval",
                                     toy_data=toy_heldout_file(cfg.eval, cdir))["toy"]["metrics"]["pass@1"]
        rows.append({"model": f"control: SFT on reference solutions, lr {lr:g}", "pass@1": p1, "steps": steps,
                     "seconds": round(time.perf_counter() - t0)})
    return {"rows": rows, "scored_on": scored_on, "pairs": dpo["pairs"]}


def _table(rows: list[dict]) -> str:
    lines = ["| model | pass@1 | optimizer steps | seconds |", "|---|---|---|---|"]
    for r in rows:
        p = r["pass@1"]
        lines.append(f"| {r['model']} | {'-' if p is None or math.isnan(p) else f'{p:.3f}'} | {r['steps']} | "
                     f"{r.get('seconds', '')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--math-policy", help="the math loop's final policy folder (skip math when absent)")
    ap.add_argument("--coder-policy", help="the Coder SFT model folder (skip coder when absent)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--math-set", action="append", default=[], metavar="KEY=VALUE", help="GRPO config override")
    ap.add_argument("--coder-set", action="append", default=[], metavar="KEY=VALUE", help="DPO config override")
    ap.add_argument("--coder-val", type=int, default=0, metavar="N",
                    help="score the coder rows on N validation tasks of the training split (for tuning)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    results = {}
    if args.math_policy:
        results["math"] = _math(args.math_policy, out / "math", args.math_set)
    if args.coder_policy:
        results["coder"] = _coder(args.coder_policy, out / "coder", args.coder_set, args.coder_val)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    if "math" in results:
        m = results["math"]
        print(f"\n## Math: GRPO vs SFT control ({m['heldout_problems']} held-out problems, greedy, the one grader; "
              f"{m['prompts_sampled']} prompts sampled)\n\n{_table(m['rows'])}\n\nReward health per step:\n\n"
              f"{m['health']}\n")
    if "coder" in results:
        c = results["coder"]
        print(f"\n## Coder: DPO vs SFT control ({c['scored_on']}, greedy; "
              f"{c['pairs']['pairs']} pairs from {c['pairs']['tasks_with_pairs']} tasks)\n\n{_table(c['rows'])}\n")


if __name__ == "__main__":
    main()
