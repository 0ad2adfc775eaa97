"""Reward-model losses and their training objectives for the shared loop (``common/train/loop.py``).

Two losses over scalar rewards ``r(x, y)`` (one per question/response pair):

* **pairwise** (Bradley-Terry; Ouyang et al. 2022, eq. 1)::

      L = mean over pairs of  -log sigmoid(r(x, y_chosen) - r(x, y_rejected))

* **listwise** (Qwen2.5-Math technical report, Yang et al. 2024, sec. 3.2, eq. 1): for one
  question with k correct (positive) and m incorrect (negative) responses (Qwen samples 6, so
  m = 6 - k), the loss is the mean over all k*m positive/negative pairs of the same question::

      L_group = -1/(k*m) * sum_{p in pos} sum_{n in neg} log sigmoid(r(x, y_p) - r(x, y_n))

  and a batch's loss is the mean of ``L_group`` over its groups that hold at least one positive
  and one negative (groups that are all correct or all wrong carry no ranking signal).

Both objectives implement the ``Objective`` protocol of ``domainspec.common.train.objectives``:
``collate(rows) -> batch``, ``loss(model, batch) -> (mean loss, metrics)``, ``num_targets`` (pairs,
or groups with a ranking signal: the loop's step-mean weights) and ``num_tokens``. Rows are tokenized by
``domainspec.math.reward_model`` (``pair_rows`` / ``group_rows``): pairwise rows are
``{"chosen_ids", "rejected_ids"}``, listwise rows ``{"ids": [...], "labels": [...]}`` (one group).
The model is a ``*ForSequenceClassification`` with ``num_labels=1``: its logit at the last
non-pad token is the reward. This module trains nothing itself; ``train`` runs it.
"""
from __future__ import annotations

from typing import Any, Sequence


def pairwise_loss(r_chosen, r_rejected):
    """Bradley-Terry: mean of -log sigmoid(r_chosen - r_rejected)."""
    import torch.nn.functional as F
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def listwise_loss(rewards, labels, groups):
    """Qwen2.5-Math-RM listwise loss (module docstring): mean over groups of the mean pair loss.

    ``rewards`` (N,) float, ``labels`` (N,) bool (True = correct), ``groups`` (N,) int group ids.
    Returns ``(loss, n_groups_used)``; with no usable group the loss is a zero that keeps the graph.
    """
    import torch
    import torch.nn.functional as F
    labels = labels.bool()
    per_group = []
    for g in torch.unique(groups):
        in_g = groups == g
        pos, neg = rewards[in_g & labels], rewards[in_g & ~labels]
        if len(pos) == 0 or len(neg) == 0:
            continue
        diff = pos[:, None] - neg[None, :]  # (k, m): every positive against every negative
        per_group.append(-F.logsigmoid(diff).mean())
    if not per_group:
        return rewards.sum() * 0.0, 0
    return torch.stack(per_group).mean(), len(per_group)


def pair_accuracy(r_chosen, r_rejected) -> float:
    """Fraction of pairs ranked right; a tie counts one half."""
    d = r_chosen - r_rejected
    return float(((d > 0).float() + 0.5 * (d == 0).float()).mean()) if len(d) else float("nan")


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> dict:
    """Right-padded ``input_ids`` and ``attention_mask`` (the reward is read at the last real token)."""
    import torch
    if not seqs:
        raise ValueError("cannot collate an empty batch of reward-model sequences")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def rewards_of(model: Any, batch: dict):
    """Scalar rewards (N,) from a sequence-classification model with one label."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits if hasattr(out, "logits") else out[0]
    return logits.squeeze(-1).float()


class PairwiseRMObjective:
    """Bradley-Terry objective; one row = one (chosen, rejected) pair."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, rows: Sequence[dict]) -> dict:
        seqs = [r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows]
        batch = pad_batch(seqs, self.pad_id)
        batch["n_pairs"] = len(rows)
        return batch

    def loss(self, model: Any, batch: dict):
        r = rewards_of(model, batch)
        n = batch["n_pairs"]
        rc, rr = r[:n], r[n:]
        loss = pairwise_loss(rc, rr)
        return loss, {"rm_pair_acc": pair_accuracy(rc.detach(), rr.detach()),
                      "rm_margin": float((rc - rr).detach().mean())}

    def num_targets(self, batch: dict) -> int:
        return int(batch["n_pairs"])

    def num_tokens(self, batch: dict) -> int:
        return int(batch["attention_mask"].sum())


class ListwiseRMObjective:
    """Qwen2.5-Math-RM listwise objective; one row = one question's group of graded responses."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def collate(self, rows: Sequence[dict]) -> dict:
        import torch
        seqs, labels, groups = [], [], []
        for g, row in enumerate(rows):
            if len(row["ids"]) != len(row["labels"]):
                raise ValueError(f"listwise row {g}: {len(row['ids'])} responses but {len(row['labels'])} labels")
            seqs.extend(row["ids"])
            labels.extend(bool(x) for x in row["labels"])
            groups.extend([g] * len(row["ids"]))
        batch = pad_batch(seqs, self.pad_id)
        batch["labels_rm"] = torch.tensor(labels, dtype=torch.bool)
        batch["groups"] = torch.tensor(groups, dtype=torch.long)
        # the step mean weighs a micro-batch by its groups that carry a ranking signal
        batch["n_groups"] = sum(1 for row in rows if any(row["labels"]) and not all(row["labels"]))
        return batch

    def loss(self, model: Any, batch: dict):
        import torch
        r = rewards_of(model, batch)
        labels, groups = batch["labels_rm"].to(r.device), batch["groups"].to(r.device)
        loss, used = listwise_loss(r, labels, groups)
        with torch.no_grad():
            accs = []
            for g in torch.unique(groups):
                in_g = groups == g
                pos, neg = r[in_g & labels], r[in_g & ~labels]
                if len(pos) and len(neg):
                    d = pos[:, None] - neg[None, :]
                    accs.append(((d > 0).float() + 0.5 * (d == 0).float()).mean())
            acc = float(torch.stack(accs).mean()) if accs else float("nan")
        return loss, {"rm_pair_acc": acc}

    def num_targets(self, batch: dict) -> int:
        return int(batch["n_groups"])

    def num_tokens(self, batch: dict) -> int:
        return int(batch["attention_mask"].sum())


OBJECTIVES = {"pairwise": PairwiseRMObjective, "listwise": ListwiseRMObjective}
