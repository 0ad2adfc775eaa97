"""Reward presets for RL on math problems, each run under a hard time limit.

A reward function maps a group of completions of one problem to one float each::

    fn(question: str, completions: list[str], answer: str | None) -> list[float]

Presets (``RewardConfig.preset``):

* ``verifier`` - 1.0 when the one math grader (``eval/grader``) finds the reference answer, else 0.0.
  Expensive equivalence checks run in the grader's guarded worker processes (``eval/grader/pool.py``)
  and count as "not equal" past ``timeout_s``.
* ``rm`` - the score of a reward-model folder (``math/reward_model.py``: ``load_reward_model`` / ``score``).
* ``qwen-math`` - both, shaped so that a verified-correct answer always outscores a wrong one::

      r = sigmoid(0.5 * r_m) + (r_v - 1),   r_v in {0, 1}

  Source: Qwen2.5-Math technical report (Yang et al. 2024), sec. 3.3 (reinforcement learning, reward
  shaping). The form was recalled, not re-checked against the report here.
* ``module:function`` - a user function by import path, run in the one sandbox
  (``common/sandbox/pool.py``) as a program per group under ``timeout_s`` of wall clock. A call that runs
  over is killed and its group's rewards count 0, with the reason logged and counted; a function that
  raises, or returns anything but one number per completion, is an error (:class:`RewardError`).

Usage::

    with RewardRunner(RewardConfig(preset="verifier")) as rewards:
        values = rewards(["What is 2+3?"], [["... \\boxed{5}", "... \\boxed{6}"]], ["5"])   # [[1.0, 0.0]]
"""
from __future__ import annotations

import importlib
import json
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from pydantic import Field, field_validator

from domainspec.common.config import Config
from domainspec.eval.grader.math_grader import GraderMode

log = logging.getLogger(__name__)

PRESETS = ("verifier", "rm", "qwen-math")
_MARK = "__domainspec_rewards__"


class RewardError(ValueError):
    """A reward function broke its contract (raised, or gave the wrong number or kind of values)."""


class RewardConfig(Config):
    preset: str = Field("verifier", description="'verifier' (the math grader against the reference), 'rm' (a "
                        "reward-model folder), 'qwen-math' (Qwen2.5-Math's shaping of both) or a user function "
                        "'package.module:function' (see math/rewards.py for its signature).")
    rm: str | None = Field(None, description="Reward-model folder for presets 'rm' and 'qwen-math'.")
    rm_max_length: int = Field(512, ge=8, description="Tokens per (question, response) input of the reward model.")
    grader_mode: GraderMode = Field("strict", description="Answer grading mode of the verifier.")
    timeout_s: float = Field(10.0, gt=0, description="Hard wall-clock limit of one reward call: per equivalence "
                             "check (verifier) or per group (user function, in the sandbox); past it the "
                             "rewards count 0 and the reason is logged.")

    @field_validator("preset")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in PRESETS and ":" not in v:
            raise ValueError(f"reward preset {v!r}: expected one of {', '.join(PRESETS)} or 'module:function'")
        return v


@dataclass
class RewardStats:
    """What went wrong while computing rewards (reasons are logged as they happen)."""
    timeouts: int = 0
    reasons: list[str] = field(default_factory=list)


def qwen_math_reward(rm_score: float, verified: bool) -> float:
    """sigmoid(0.5 * r_m) + (r_v - 1) (module docstring: Qwen2.5-Math report, recalled)."""
    return 1.0 / (1.0 + math.exp(-0.5 * rm_score)) + (float(verified) - 1.0)


def check_values(values: Any, n: int, where: str) -> list[float]:
    """``values`` as n finite floats, else RewardError naming ``where`` (never a broadcast)."""
    if not isinstance(values, (list, tuple)):
        raise RewardError(f"{where}: returned {type(values).__name__}, expected a list of {n} numbers")
    if len(values) != n:
        raise RewardError(f"{where}: returned {len(values)} values for {n} completions")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise RewardError(f"{where}: value {i} is {v!r}, expected a finite number")
        out.append(float(v))
    return out


def resolve_function(path: str) -> Callable:
    """The function named ``module:function`` (an import error or a missing name is a RewardError)."""
    module, _, name = path.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise RewardError(f"reward function {path!r} does not load: {e}") from e
    if not callable(fn):
        raise RewardError(f"reward function {path!r} is not callable")
    return fn


def untrusted_reward_program(path: str, question: str, completions: Sequence[str], answer: str | None) -> str:
    """The sandbox program that calls a user reward function on one group and prints its values."""
    module, _, name = path.partition(":")
    payload = json.dumps({"q": question, "c": list(completions), "a": answer})
    return (f"import json, sys\nsys.path[:0] = {json.dumps([p for p in sys.path if p])}\n"
            f"from {module} import {name} as _fn\n_x = json.loads({payload!r})\n"
            f"_v = _fn(_x['q'], _x['c'], _x['a'])\n"
            f"print({_MARK!r} + json.dumps(list(_v) if isinstance(_v, (list, tuple)) else repr(_v)))\n")


class RewardRunner:
    """Computes one preset's rewards for groups of completions (a context manager: it may own a sandbox)."""

    def __init__(self, cfg: RewardConfig, sandbox_config=None):
        self.cfg, self.stats = cfg, RewardStats()
        self._sandbox, self._sandbox_config = None, sandbox_config
        self._grader = self._rm = None
        if cfg.preset in ("verifier", "qwen-math"):
            from domainspec.eval.grader.math_grader import MathGrader
            self._grader = MathGrader(cfg.grader_mode, timeout_s=cfg.timeout_s)
        if cfg.preset in ("rm", "qwen-math"):
            if not cfg.rm:
                raise RewardError(f"reward preset {cfg.preset!r} needs reward.rm (a reward-model folder)")
            from domainspec.math.reward_model import load_reward_model
            self._rm = load_reward_model(cfg.rm)
        if ":" in cfg.preset:
            resolve_function(cfg.preset)  # fail before any sampling when the path is wrong

    def __enter__(self) -> "RewardRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __call__(self, questions: Sequence[str], groups: Sequence[Sequence[str]],
                 answers: Sequence[str | None]) -> list[list[float]]:
        """One list of rewards per group, in order."""
        if not (len(questions) == len(groups) == len(answers)):
            raise ValueError(f"{len(questions)} questions, {len(groups)} groups, {len(answers)} answers")
        p = self.cfg.preset
        if ":" in p:
            return self._user(questions, groups, answers)
        verified = self._verify(groups, answers) if self._grader is not None else None
        scores = self._score(questions, groups) if self._rm is not None else None
        if p == "verifier":
            return verified
        if p == "rm":
            return scores
        return [[qwen_math_reward(s, v == 1.0) for s, v in zip(ss, vv)] for ss, vv in zip(scores, verified)]

    def _verify(self, groups, answers) -> list[list[float]]:
        pairs = [(c, a) for g, a in zip(groups, answers) for c in g]
        if any(a is None for a in answers):
            raise RewardError("the verifier needs a reference answer for every problem")
        grades = iter(self._grader.grade_many(pairs))
        return [[1.0 if next(grades).correct else 0.0 for _ in g] for g in groups]

    def _score(self, questions, groups) -> list[list[float]]:
        from domainspec.math.reward_model import score
        qs = [q for q, g in zip(questions, groups) for _ in g]
        flat = iter(score(*self._rm, qs, [c for g in groups for c in g], self.cfg.rm_max_length))
        return [[next(flat) for _ in g] for g in groups]

    def _user(self, questions, groups, answers) -> list[list[float]]:
        from domainspec.common.sandbox.pool import Sandbox, SandboxConfig, Status
        if self._sandbox is None:
            self._sandbox = Sandbox(self._sandbox_config or SandboxConfig(timeout_s=self.cfg.timeout_s))
        programs = [untrusted_reward_program(self.cfg.preset, q, g, a) for q, g, a in zip(questions, groups, answers)]
        results = self._sandbox.run_many(programs, timeout_s=self.cfg.timeout_s, desc="rewards")
        out = []
        for i, (res, g) in enumerate(zip(results, groups)):
            where = f"reward function {self.cfg.preset} (group {i})"
            if res.status == Status.TIMEOUT:
                reason = f"{where}: killed at its {self.cfg.timeout_s:g} s limit; its {len(g)} rewards count 0"
                log.warning(reason)
                self.stats.timeouts += 1
                self.stats.reasons.append(reason)
                out.append([0.0] * len(g))
                continue
            line = next((x for x in reversed(res.stdout.splitlines()) if x.startswith(_MARK)), None)
            if res.status != Status.PASSED or line is None:
                tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
                raise RewardError(f"{where}: {Status(res.status).value}: {tail}")
            out.append(check_values(json.loads(line[len(_MARK):]), len(g), where))
        return out
