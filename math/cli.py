"""``domainspec math ...``: CoT/TIR inference, RM training, rejection sampling, the self-improvement loop.

    domainspec math infer --model DIR --mode tir --problems gsm8k/test.jsonl --limit 20 --out samples.jsonl
    domainspec math rm-train --groups groups.jsonl --init-from runs/sft/final --out runs/rm [--config rm.yaml]
    domainspec math reject-sample --model DIR --problems p.jsonl --rm runs/rm/final --out runs/rs \
        [--set rejection_sampling.sampling.n=16]
    domainspec math loop --config math/default_loop.yaml --out runs/math_loop [--set rounds=3]
    domainspec math grpo --model runs/math_loop/policy --out runs/grpo [--config grpo.yaml] [--set iterations=20]

Handlers only parse and call; heavy imports stay inside them so ``domainspec --help`` is fast.
Configs follow the one precedence rule: class defaults < ``--config`` YAML < ``--set key=value``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_LOOP_CONFIG = Path(__file__).with_name("default_loop.yaml")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help='policy: HF folder, hub name, *.gguf path or "tiny"')
    p.add_argument("--gguf-file", default=None, help="GGUF file name inside --model (a folder)")


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="YAML file with this command's config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")


def register(subparsers) -> None:
    from domainspec.common.models.sampling import add_sampling_args

    math = subparsers.add_parser("math", help="math: CoT/TIR inference, reward model, rejection sampling, loop")
    sub = math.add_subparsers(dest="math_command", metavar="SUBCOMMAND")

    p = sub.add_parser("infer", help="CoT or TIR inference on a problems file; grades when answers are given")
    _model_args(p)
    p.add_argument("--mode", choices=["cot", "tir"], default="cot")
    p.add_argument("--problems", required=True, help="JSONL with question/problem (+ answer or solution)")
    p.add_argument("--limit", type=int, default=None, help="first N problems")
    p.add_argument("--out", required=True, help="samples JSONL (task_id, completion; domainspec eval score format)")
    add_sampling_args(p)
    p.add_argument("--max-tool-calls", type=int, default=4, help="TIR: code executions per response")
    p.add_argument("--tool-timeout", type=float, default=10.0, help="TIR: seconds per execution")
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("rm-train", help="train a reward model on graded response groups")
    p.add_argument("--groups", required=True, help="JSONL rows {question, responses: [...], labels: [bool...]} "
                                                   "(a loop round's samples.jsonl works too)")
    p.add_argument("--init-from", required=True, help="causal-LM folder the RM starts from (usually the policy)")
    p.add_argument("--out", required=True)
    _config_args(p)
    p.set_defaults(func=cmd_rm_train)

    p = sub.add_parser("reject-sample", help="sample, grade, rank by RM, keep top-k correct; write SFT data "
                                             "(--config / --set: the reject_sample stage's config)")
    _model_args(p)
    p.add_argument("--problems", required=True, help="JSONL with question/problem (+ answer; else majority vote)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--rm", default=None, help="reward-model folder (omit: keep the first correct responses)")
    p.add_argument("--out", required=True)
    _config_args(p)
    p.set_defaults(func=cmd_reject_sample)

    p = sub.add_parser("loop", help="SFT -> [sample -> grade -> RM -> rejection sampling -> SFT] x R")
    p.add_argument("--config", default=str(DEFAULT_LOOP_CONFIG), help="loop YAML (default: the embedded CPU default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True, help="run folder; rerunning resumes round by round")
    p.set_defaults(func=cmd_loop)

    p = sub.add_parser("grpo", help="GRPO from a policy: group sampling, verifier / RM / shaped rewards, "
                                    "reward health per step (--config / --set: GRPOConfig)")
    _config_args(p)
    p.add_argument("--model", default=None, help="starting policy folder (sets model.name_or_path)")
    p.add_argument("--out", required=True, help="run folder; rerunning resumes iteration by iteration")
    p.set_defaults(func=cmd_grpo)


def cmd_infer(args) -> int:
    """CoT/TIR samples through the one generate path; rows of problems with an answer get the one grader's verdict."""
    from domainspec.common.artifacts import write_jsonl
    from domainspec.common.models.generation import make_backend
    from domainspec.common.models.loading import ModelConfig
    from domainspec.common.models.sampling import sampling_from_args
    from domainspec.eval.benchmarks.problems import ProblemSet
    from domainspec.eval.generate import generate_samples
    from domainspec.eval.grader.math_grader import MathGrader
    from domainspec.eval.scoring import score_samples
    from domainspec.math.rejection_sampling import read_problems
    from domainspec.math.tir import TIRConfig, completer
    from domainspec.common.sandbox.pool import SandboxConfig, sandbox_if
    problems = read_problems(args.problems, args.limit)
    sampling = sampling_from_args(args)
    backend = make_backend(sampling, ModelConfig(name_or_path=args.model, gguf_file=args.gguf_file))
    tir = TIRConfig(max_tool_calls=args.max_tool_calls, tool_timeout_s=args.tool_timeout)
    bench = ProblemSet(Path(args.problems).stem)
    tasks = bench.tasks(problems, require_answers=False)
    with backend, sandbox_if(args.mode == "tir", SandboxConfig(timeout_s=args.tool_timeout)) as sb:
        rows = generate_samples(tasks, completer(backend, args.mode, sb, tir, progress=True), sampling,
                                args.out, {"mode": args.mode}, resume=False)
    answered = [p for p in problems if p["answer"] is not None]
    if answered:
        ids = {p["id"] for p in answered}
        scored = score_samples(bench, bench.tasks(answered), [r for r in rows if r["task_id"] in ids],
                               grader=MathGrader())
        verdicts = {(r.task_id, r.sample_index): r.passed for r in scored.results}
        rows = [{**r, "passed": verdicts[(r["task_id"], r["sample_index"])]} if r["task_id"] in ids else r
                for r in rows]
        write_jsonl(rows, args.out)
        right = sum(verdicts.values())
        print(f"{args.mode}: {right}/{len(verdicts)} responses correct ({right / len(verdicts):.3f}) -> {args.out}")
    else:
        print(f"{args.mode}: {len(rows)} responses -> {args.out}")
    return 0


def cmd_rm_train(args) -> int:
    from domainspec.common.config import load_config
    from domainspec.math.reward_model import RewardModelConfig
    from domainspec.math.stages import RMStageConfig, train_rm
    cfg = RMStageConfig(groups=args.groups, init_from=args.init_from,
                        reward_model=load_config(RewardModelConfig, args.config, args.overrides))
    print(json.dumps(train_rm(cfg, Path(args.out)), indent=2))
    return 0


def cmd_reject_sample(args) -> int:
    from domainspec.common.config import load_config
    from domainspec.math.stages import RejectSampleStageConfig, reject_sample
    flags = [f"model.name_or_path={args.model}", f"problems={args.problems}"]
    flags += [f"{key}={value}" for key, value in (("model.gguf_file", args.gguf_file), ("limit", args.limit),
                                                  ("rm", args.rm)) if value is not None]
    cfg = load_config(RejectSampleStageConfig, args.config, flags + list(args.overrides))
    out = Path(args.out)
    cfg.save_resolved(out)
    print(json.dumps(reject_sample(cfg, out), indent=2))
    return 0


def cmd_loop(args) -> int:
    from domainspec.common.config import load_config
    from domainspec.math.loop import MathLoopConfig, run_loop
    from domainspec.math.loop_report import markdown
    cfg = load_config(MathLoopConfig, args.config, args.overrides)
    summary = run_loop(cfg, args.out)
    print(markdown(summary))
    return 0


def cmd_grpo(args) -> int:
    from domainspec.common.config import load_config
    from domainspec.math.grpo import GRPOConfig, markdown, run_grpo
    flags = [f"model.name_or_path={args.model}"] if args.model else []
    cfg = load_config(GRPOConfig, args.config, flags + list(args.overrides))
    print(markdown(run_grpo(cfg, args.out)))
    return 0
