"""Math reward model (RM): a scalar head on a causal LM, trained on graded samples.

The RM is a Hugging Face ``*ForSequenceClassification`` model with ``num_labels=1`` built from a
causal-LM folder (the backbone's weights are loaded, the linear ``score`` head is new): its
logit at the last non-pad token is the reward, the same reading transformers uses, so the saved
folder loads as it is (``AutoModelForSequenceClassification.from_pretrained``) and scores the
same outside this project. Qwen2.5-Math-RM puts a two-layer head on the same backbone; one
linear layer is what transformers ships and keeps the folder loadable without custom code.

Training data are *groups*: one question with several responses graded correct/incorrect by
the one math grader, ``{"question", "responses": [...], "labels": [bool, ...]}``. Training runs on
the shared loop (``domainspec.common.train.loop.train``) with an objective from
``domainspec.math.rm_objectives`` (listwise by default, as Qwen2.5-Math-RM; or pairwise).
Evaluation is pairwise accuracy over every (correct, incorrect) pair of held-out groups.

Usage::

    res = train_reward_model(RewardModelConfig(), groups, out_dir, init_from="runs/sft/final")
    model, tok = load_reward_model(res["path"]); scores = score(model, tok, questions, responses)
"""
from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.train.loop import TrainConfig
from domainspec.math.prompts import COT_SYSTEM_PROMPT

log = logging.getLogger(__name__)


class RewardModelConfig(Config):
    loss: Literal["listwise", "pairwise"] = Field(
        "listwise", description="listwise: Qwen2.5-Math-RM loss over each question's correct/incorrect responses; "
                                "pairwise: Bradley-Terry on (correct, incorrect) pairs.")
    max_length: int = Field(512, ge=8, description="Tokens per (question, response) input; longer inputs keep their "
                                                  "last tokens (where the final answer is).")
    max_pairs_per_group: int = Field(16, ge=1, description="Pairwise loss: most (correct, incorrect) pairs drawn per question.")
    heldout_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of questions (with both correct and "
                                                                    "incorrect responses) kept out of training "
                                                                    "for the pairwise-accuracy check.")
    score_batch_size: int = Field(16, ge=1, description="Responses scored per forward pass at inference.")
    seed: int = Field(0, description="Seed of the held-out split, of pair sampling and of the new score head's "
                                     "initialization.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="The shared training loop's settings; "
                                                                         "a row (micro/global batch unit) is one "
                                                                         "question's group (listwise) or one pair.")


# ---------------------------------------------------------------- data


def rm_messages(question: str, response: str) -> list[dict]:
    return [{"role": "system", "content": COT_SYSTEM_PROMPT}, {"role": "user", "content": question},
            {"role": "assistant", "content": response}]


def encode(tokenizer: Any, question: str, response: str, max_length: int) -> list[int]:
    """Token ids of the whole chat (system, question, response); keeps the last ``max_length``."""
    text = tokenizer.apply_chat_template(rm_messages(question, response), tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return list(ids[-max_length:])


def informative(group: dict) -> bool:
    labels = group["labels"]
    return any(labels) and not all(labels)


def split_groups(groups: Sequence[dict], heldout_fraction: float, seed: int = 0) -> tuple[list, list]:
    """(train, heldout) by question; only informative groups (both grades present) are held out."""
    useful = [g for g in groups if informative(g)]
    rng = random.Random(seed)
    order = list(range(len(useful)))
    rng.shuffle(order)
    n_held = int(round(heldout_fraction * len(useful)))
    held_idx = set(order[:n_held])
    held = [useful[i] for i in sorted(held_idx)]
    train = [g for i, g in enumerate(useful) if i not in held_idx]
    return train, held


def group_rows(tokenizer: Any, groups: Sequence[dict], max_length: int) -> list[dict]:
    """Listwise rows ``{"ids", "labels"}`` for informative groups."""
    return [{"ids": [encode(tokenizer, g["question"], r, max_length) for r in g["responses"]],
             "labels": [bool(x) for x in g["labels"]]} for g in groups if informative(g)]


def all_pairs(group: dict) -> list[tuple[str, str]]:
    pos = [r for r, ok in zip(group["responses"], group["labels"]) if ok]
    neg = [r for r, ok in zip(group["responses"], group["labels"]) if not ok]
    return [(p, n) for p in pos for n in neg]


def pair_rows(tokenizer: Any, groups: Sequence[dict], max_length: int, max_pairs_per_group: int,
              seed: int = 0) -> list[dict]:
    """Pairwise rows ``{"chosen_ids", "rejected_ids"}``: up to ``max_pairs_per_group`` per question."""
    rng = random.Random(seed)
    rows = []
    for g in groups:
        pairs = all_pairs(g)
        if len(pairs) > max_pairs_per_group:
            pairs = rng.sample(pairs, max_pairs_per_group)
        for chosen, rejected in pairs:
            rows.append({"chosen_ids": encode(tokenizer, g["question"], chosen, max_length),
                         "rejected_ids": encode(tokenizer, g["question"], rejected, max_length)})
    return rows


def read_groups(path: str | Path) -> list[dict]:
    """RM groups from JSONL; each row needs question, responses and labels of the same length.

    A loop round's graded samples (``correct`` instead of ``labels``) are read as groups too.
    """
    from domainspec.common.artifacts import read_jsonl  # the one JSONL reader with path:line errors

    groups = []
    for where, row in read_jsonl(path):
        if "labels" not in row and "correct" in row:  # graded samples of a loop round
            row = {"question": row.get("question"), "responses": row.get("responses"), "labels": row["correct"]}
        missing = [k for k in ("question", "responses", "labels") if row.get(k) is None]
        if missing:
            raise ValueError(f"{where}: RM group row lacks {missing}")
        if len(row["responses"]) != len(row["labels"]):
            raise ValueError(f"{where}: {len(row['responses'])} responses but {len(row['labels'])} labels")
        groups.append(row)
    return groups


# ---------------------------------------------------------------- model


def init_reward_model(init_from: str | Path, dtype: str = "float32", seed: int | None = None) -> tuple[Any, Any]:
    """A fresh RM from a causal-LM folder: the backbone's weights plus a new scalar head.

    ``seed``: the head's initialization seed (without it, whatever state torch's global RNG is in, so a
    run on N ranks could not reproduce a one-process run); the global RNG is left as it was."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(init_from)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            init_from, num_labels=1, dtype=getattr(torch, dtype))
    _set_pad(model, tok)
    return model, tok


def load_reward_model(path: str | Path) -> tuple[Any, Any]:
    """A trained RM folder (as written by :func:`train_reward_model`)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    p = Path(path)
    if not (p / "config.json").is_file():
        raise FileNotFoundError(f"{p}: not a reward-model folder (no config.json)")
    tok = AutoTokenizer.from_pretrained(p)
    model = AutoModelForSequenceClassification.from_pretrained(p)
    _set_pad(model, tok)
    import torch
    if torch.cuda.is_available():  # this rank's GPU (the launcher's LOCAL_RANK picked it)
        model.to(torch.cuda.current_device())
    model.eval()
    return model, tok


def _set_pad(model: Any, tokenizer: Any) -> None:
    # transformers reads the reward at the last token that is not pad_token_id; without a pad id
    # it refuses batches larger than one
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id


def score(model: Any, tokenizer: Any, questions: Sequence[str], responses: Sequence[str],
          max_length: int = 512, batch_size: int = 16, split: bool = False) -> list[float]:
    """Reward of each (question, response) pair, in order.

    ``split``: under a launcher, every rank calls this with the same inputs and scores every world-th batch
    (the same batches one process scores); every rank returns all scores (``common/pipeline/ranks.py``).
    """
    import torch
    from domainspec.common.pipeline import ranks
    from domainspec.math.rm_objectives import pad_batch, rewards_of
    if len(questions) != len(responses):
        raise ValueError(f"{len(questions)} questions but {len(responses)} responses")
    ids = [encode(tokenizer, q, r, max_length) for q, r in zip(questions, responses)]
    # sort by length so padded batches stay tight; scores go back to input order
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    device = next(model.parameters()).device
    model.eval()

    def run(part: list[list[int]]) -> list[list[float]]:
        with torch.no_grad():
            return [rewards_of(model, {k: v.to(device) for k, v in
                                       pad_batch([ids[i] for i in idx], model.config.pad_token_id).items()}).tolist()
                    for idx in part]

    out = [0.0] * len(ids)
    for idx, values in zip(batches, ranks.split_map(batches, run) if split else run(batches)):
        for i, v in zip(idx, values):
            out[i] = float(v)
    return out


def pairwise_accuracy(model: Any, tokenizer: Any, groups: Sequence[dict], max_length: int = 512,
                      batch_size: int = 16, split: bool = False) -> dict:
    """Share of held-out (correct, incorrect) pairs of the same question the RM ranks right (ties: 1/2)."""
    qs, rs, where = [], [], []
    for gi, g in enumerate(groups):
        for r, ok in zip(g["responses"], g["labels"]):
            qs.append(g["question"])
            rs.append(r)
            where.append((gi, bool(ok)))
    scores = score(model, tokenizer, qs, rs, max_length, batch_size, split)
    wins, n = 0.0, 0
    for gi in range(len(groups)):
        pos = [s for s, (g, ok) in zip(scores, where) if g == gi and ok]
        neg = [s for s, (g, ok) in zip(scores, where) if g == gi and not ok]
        for p in pos:
            for q in neg:
                wins += 1.0 if p > q else 0.5 if p == q else 0.0
                n += 1
    return {"pairwise_accuracy": wins / n if n else float("nan"), "num_pairs": n, "num_groups": len(groups)}


# ---------------------------------------------------------------- training


def train_reward_model(cfg: RewardModelConfig, groups: Sequence[dict], out_dir: str | Path,
                       init_from: str | Path) -> dict:
    """Train an RM on graded groups with the shared loop; returns path + held-out accuracy.

    Writes ``out_dir/final`` (the RM folder), ``out_dir/metrics.jsonl`` (the loop's), and
    ``out_dir/rm_eval.json``. Raises ValueError when no group has both grades.
    """
    from domainspec.common.train.loop import train
    from domainspec.math.rm_objectives import OBJECTIVES
    from domainspec.common.pipeline import ranks
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if ranks.is_rank0():
        cfg.save_resolved(out)
    train_groups, held = split_groups(groups, cfg.heldout_fraction, cfg.seed)
    if not train_groups:
        raise ValueError(f"reward model: none of {len(groups)} questions has both correct and incorrect "
                         "responses; sample more (n) or at a higher temperature")
    model, tok = init_reward_model(init_from, seed=cfg.seed)
    if cfg.loss == "listwise":
        rows = group_rows(tok, train_groups, cfg.max_length)
    else:
        rows = pair_rows(tok, train_groups, cfg.max_length, cfg.max_pairs_per_group, cfg.seed)
    log.info("reward model: %d training questions (%d rows, %s loss), %d held out",
             len(train_groups), len(rows), cfg.loss, len(held))
    # the loop reads a row's length from "input_ids" (its tokens-per-step log line): give the longest
    for r in rows:
        r["input_ids"] = max(r["ids"], key=len) if "ids" in r else max(r["chosen_ids"], r["rejected_ids"], key=len)
    objective = OBJECTIVES[cfg.loss](pad_id=tok.pad_token_id)
    result = train(model, tok, rows, objective, cfg.train, out)
    final = out / "final"  # the loop saved it (rank 0) and waited for every rank
    rm, rtok = load_reward_model(final)
    ev = pairwise_accuracy(rm, rtok, held, cfg.max_length, cfg.score_batch_size, split=True) if held else \
        {"pairwise_accuracy": float("nan"), "num_pairs": 0, "num_groups": 0}
    ev.update({"path": str(final), "train_questions": len(train_groups), "train_rows": len(rows), "loss": cfg.loss})
    if ranks.is_rank0():
        (out / "rm_eval.json").write_text(json.dumps(ev, indent=2))
    log.info("reward model: held-out pairwise accuracy %.3f on %d pairs", ev["pairwise_accuracy"], ev["num_pairs"])
    return {**ev, "train_result": _jsonable(result)}


def _jsonable(obj: Any) -> Any:
    try:
        import dataclasses
        if dataclasses.is_dataclass(obj):
            return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
    except Exception:
        pass
    return str(obj) if obj is not None else None
