"""Objectives for learning from rewards and preferences on the one loop: GRPO and DPO.

Both implement the :class:`~domainspec.common.train.objectives.Objective` protocol, so
``common/train/loop.py: train`` runs them like CPT/SFT/RM; what differs is the row layout and the loss.
Rows hold a *completion given a prompt* as one token sequence (``ids``) with a ``mask`` that marks the
completion's tokens (aligned with ``ids``; the first token is never a target). The one helper for
"log-probabilities of a completion given its prompt" is :func:`token_logprobs` (training, with grad) and
:func:`score_logprobs` (no grad, batched: the old policy at generation time, the frozen reference).

GRPO (Shao et al. 2024, DeepSeekMath, sec. 4.1) with the knobs of its successors::

    A_i     = r_i - mean(r_group)            [/ (std(r_group) + eps)  when scale_rewards]
    rho_t   = exp(logp_t - logp_old_t)
    pg_t    = -min(rho_t * A, clip(rho_t, 1 - clip_low, 1 + clip_high) * A)
    kl_t    = exp(ref_t - logp_t) - (ref_t - logp_t) - 1      (the k3 estimator, DeepSeekMath eq. 4)
    loss_t  = pg_t + kl_coef * kl_t

aggregated over tokens as ``token`` (sum over every completion token of the step / their number: DAPO,
Yu et al. 2025, sec. 3.3), ``sequence`` (mean over a sequence's tokens, then over sequences: GRPO's
eq. 3) or ``constant`` (sum over a sequence's tokens / ``max_tokens``, then mean over sequences: Dr. GRPO,
Liu et al. 2025, sec. 3.1, which also turns ``scale_rewards`` off). ``clip_high`` > ``clip_low`` is DAPO's
clip-higher (0.2 / 0.28). Group std is the sample (n-1) std, as TRL's GRPOTrainer computes it.

DPO (Rafailov et al. 2023, eq. 7), the sigmoid loss against a frozen reference::

    loss = -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))      pi_*, ref_*: summed completion logprobs

optionally plus ``nll_coef`` x the chosen completions' length-normalized NLL (DPO + NLL, "RPO": Pang et al.
2024, Iterative Reasoning Preference Optimization, eq. 1, alpha = 1 there), which keeps the chosen
programs' likelihood from falling while the margin grows. ``loss_type="ipo"`` replaces the sigmoid by IPO's
``(h - 1 / (2 beta))^2`` (Azar et al. 2023), h the log-ratio difference above; rows may restrict the tokens
the log-ratios sum over to where a pair differs (:func:`focus_masks`: Focused-DPO / Target-DPO).

Reference (and old-policy) logprobs are computed once, before training, and stored in the rows; the
objectives never hold a second model. Logprobs are taken at ``temperature`` (logits / T; TRL does the
same for GRPO), so the ratio compares the distribution the samples were drawn from.
"""
from __future__ import annotations

from typing import Any, Literal, Mapping, Sequence

from pydantic import Field

from domainspec.common.config import Config

Aggregation = Literal["token", "sequence", "constant"]


# ---------------------------------------------------------------- pure functions (table-tested)


def group_advantages(rewards, group_size: int, scale_rewards: bool = True, eps: float = 1e-4):
    """Group-normalized advantages of rewards laid out group after group (``len % group_size == 0``)."""
    import torch
    r = torch.as_tensor(rewards, dtype=torch.float64)
    if group_size < 1 or r.numel() % group_size:
        raise ValueError(f"{r.numel()} rewards do not split into groups of {group_size}")
    g = r.view(-1, group_size)
    adv = g - g.mean(dim=1, keepdim=True)
    if scale_rewards:
        std = g.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(g[:, :1])
        adv = adv / (std + eps)
    return adv.reshape(-1).float()


def kl_k3(logp, ref_logp):
    """Per-token k3 estimate of KL(pi || ref) from samples of pi: exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    import torch
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def clipped_pg_loss(logp, old_logp, advantages, mask, clip_low: float = 0.2, clip_high: float = 0.28,
                    aggregation: Aggregation = "token", ref_logp=None, kl_coef: float = 0.0,
                    max_tokens: int | None = None):
    """GRPO loss of a batch (module docstring) and its metrics.

    ``logp``, ``old_logp``, ``ref_logp``, ``mask``: [B, T] (mask: 1 on completion tokens that count);
    ``advantages``: [B]. Returns ``(loss, metrics)``; metrics are plain floats: ``clip_fraction`` (share of
    counted tokens whose ratio was clipped in the direction that matters), ``kl`` (mean k3 per token,
    when ``ref_logp`` is given), ``ratio`` (mean).
    """
    import torch
    mask = mask.to(logp.dtype)
    adv = advantages.to(logp.dtype)[:, None]
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl = None
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp)
        if kl_coef:
            per_token = per_token + kl_coef * kl
    n_tok = mask.sum().clamp(min=1)
    if aggregation == "token":
        loss = (per_token * mask).sum() / n_tok
    elif aggregation == "sequence":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    elif aggregation == "constant":
        if not max_tokens:
            raise ValueError("aggregation 'constant' (Dr. GRPO) needs max_tokens (the generation budget)")
        loss = ((per_token * mask).sum(-1) / max_tokens).mean()
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected 'token', 'sequence' or 'constant'")
    with torch.no_grad():
        was_clipped = (unclipped != clipped) & (clipped < unclipped)  # min() picked the clipped term
        metrics = {"clip_fraction": float((was_clipped.to(mask.dtype) * mask).sum() / n_tok),
                   "ratio": float((ratio * mask).sum() / n_tok)}
        if kl is not None:
            metrics["kl"] = float((kl * mask).sum() / n_tok)
    return loss, metrics


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float = 0.1,
             loss_type: str = "sigmoid"):
    """DPO loss (mean over pairs) and metrics: reward accuracy and margin (beta-scaled).

    ``sigmoid``: -log sigmoid(beta * h) (Rafailov et al. 2023, eq. 7); ``ipo``: (h - 1 / (2 beta))^2 (Azar et
    al. 2023, eq. 17), where h = (pi_c - ref_c) - (pi_r - ref_r). IPO's target margin is finite, so deterministic
    preferences (a passing program always beats a failing one) do not drive h to infinity as they do in DPO.
    """
    import torch
    import torch.nn.functional as F
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    margin = beta * h
    if loss_type == "sigmoid":
        loss = -F.logsigmoid(margin).mean()
    elif loss_type == "ipo":
        loss = ((h - 1 / (2 * beta)) ** 2).mean()
    else:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; expected 'sigmoid' or 'ipo'")
    with torch.no_grad():
        metrics = {"reward_accuracy": float((margin > 0).float().mean()), "reward_margin": float(margin.mean())}
    return loss, metrics


# ---------------------------------------------------------------- logprobs of completions


def pad_rows(seqs: Sequence[Sequence[int]], masks: Sequence[Sequence[int]], pad_id: int) -> dict:
    """Right-padded ``input_ids`` / ``attention_mask`` and the completion ``mask`` of token sequences."""
    import torch
    if not seqs:
        raise ValueError("cannot collate an empty batch of completions")
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    comp = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, m) in enumerate(zip(seqs, masks)):
        if len(s) != len(m):
            raise ValueError(f"completion row {i}: {len(s)} tokens but a mask of {len(m)}")
        ids[i, :len(s)] = torch.tensor(list(s), dtype=torch.long)
        attn[i, :len(s)] = 1
        comp[i, :len(s)] = torch.tensor(list(m), dtype=torch.long)
    return {"input_ids": ids, "attention_mask": attn, "mask": comp}


def token_logprobs(model: Any, input_ids, attention_mask, temperature: float = 1.0):
    """[B, T] log-probability of each token given the ones before it (position 0: 0; padded: 0)."""
    import torch
    import torch.nn.functional as F
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, :-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    picked = torch.gather(logits, -1, input_ids[:, 1:, None]).squeeze(-1)
    lp = picked - torch.logsumexp(logits, dim=-1)
    return F.pad(lp, (1, 0)) * attention_mask.to(lp.dtype)


def score_logprobs(model: Any, rows: Sequence[Mapping], pad_id: int, temperature: float = 1.0,
                   batch_size: int = 32) -> list[list[float]]:
    """Per row ``{"ids", "mask"}``: the logprob of every token of ``ids`` (no grad, model in eval mode)."""
    import torch
    out: list[list[float]] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for s in range(0, len(rows), batch_size):
                chunk = rows[s:s + batch_size]
                b = pad_rows([r["ids"] for r in chunk], [r["mask"] for r in chunk], pad_id)
                device = next(model.parameters()).device
                lp = token_logprobs(model, b["input_ids"].to(device), b["attention_mask"].to(device), temperature)
                out.extend(lp[i, :len(r["ids"])].tolist() for i, r in enumerate(chunk))
    finally:
        model.train(was_training)
    return out


def _aligned(values: Sequence[Sequence[float]], width: int):
    import torch
    t = torch.zeros((len(values), width), dtype=torch.float32)
    for i, v in enumerate(values):
        t[i, :len(v)] = torch.tensor(list(v), dtype=torch.float32)
    return t


# ---------------------------------------------------------------- objectives


class GRPOLossConfig(Config):
    clip_low: float = Field(0.2, ge=0, lt=1, description="Lower clip range: ratios below 1 - clip_low stop "
                            "pulling (PPO's epsilon 0.2, Schulman et al. 2017; DAPO keeps 0.2).")
    clip_high: float = Field(0.28, ge=0, description="Upper clip range: ratios above 1 + clip_high stop pushing. "
                             "0.28 = DAPO's clip-higher (Yu et al. 2025, sec. 3.1); 0.2 = symmetric PPO/GRPO.")
    aggregation: Aggregation = Field("token", description="How per-token losses form the step loss: 'token' "
                                     "(mean over all completion tokens of the step: DAPO), 'sequence' (mean per "
                                     "sequence, then over sequences: GRPO), 'constant' (sum per sequence / "
                                     "max_new_tokens: Dr. GRPO).")
    scale_rewards: bool = Field(True, description="Divide group-centred rewards by the group's std (GRPO); "
                                "Dr. GRPO (Liu et al. 2025) turns it off (a difficulty bias).")
    kl_coef: float = Field(0.0, ge=0, description="Weight of the k3 KL to the frozen reference (DeepSeekMath "
                           "GRPO used 0.04; DAPO and Dr. GRPO drop it: 0). The KL is measured and logged either way.")


class GRPOObjective:
    """Rows: ``ids``, ``mask`` (completion tokens that count), ``old_logp``, ``ref_logp`` (lists aligned with
    ``ids``) and ``advantage`` (a float). ``num_targets``: counted tokens ('token') or sequences."""

    def __init__(self, pad_id: int, loss: GRPOLossConfig, max_tokens: int, temperature: float = 1.0):
        self.pad_id, self.cfg, self.max_tokens, self.temperature = pad_id, loss, max_tokens, temperature

    def collate(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch
        b = pad_rows([r["ids"] for r in rows], [r["mask"] for r in rows], self.pad_id)
        width = b["input_ids"].shape[1]
        b["old_logp"] = _aligned([r["old_logp"] for r in rows], width)
        b["ref_logp"] = _aligned([r["ref_logp"] for r in rows], width)
        b["advantage"] = torch.tensor([float(r["advantage"]) for r in rows], dtype=torch.float32)
        return b

    def loss(self, model: Any, batch: Mapping[str, Any]):
        logp = token_logprobs(model, batch["input_ids"], batch["attention_mask"], self.temperature)
        c = self.cfg
        return clipped_pg_loss(logp, batch["old_logp"], batch["advantage"], batch["mask"], c.clip_low, c.clip_high,
                               c.aggregation, batch["ref_logp"], c.kl_coef, self.max_tokens)

    def num_targets(self, batch: Mapping[str, Any]) -> int:
        if self.cfg.aggregation == "token":
            return int(batch["mask"].sum())
        return int(batch["mask"].shape[0])

    def num_tokens(self, batch: Mapping[str, Any]) -> int:
        return int(batch["attention_mask"].sum())


class DPOObjective:
    """Rows: ``chosen_ids``/``chosen_mask``, ``rejected_ids``/``rejected_mask`` and the reference's summed
    completion logprobs ``ref_chosen``/``ref_rejected``; optionally ``chosen_dpo_mask``/``rejected_dpo_mask``,
    the tokens the DPO log-ratios sum over (:func:`focus_masks`; the reference sums must be over the same
    tokens), else the whole completions. The NLL term always covers the whole chosen completion.
    ``num_targets``: pairs."""

    def __init__(self, pad_id: int, beta: float = 0.1, nll_coef: float = 0.0, loss_type: str = "sigmoid"):
        self.pad_id, self.beta, self.nll_coef, self.loss_type = pad_id, beta, nll_coef, loss_type

    def collate(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch
        b = pad_rows([r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows],
                     [r["chosen_mask"] for r in rows] + [r["rejected_mask"] for r in rows], self.pad_id)
        focus = [r.get(f"{side}_dpo_mask", r[f"{side}_mask"]) for side in ("chosen", "rejected") for r in rows]
        b["dpo_mask"] = _aligned(focus, b["input_ids"].shape[1])
        b["ref_chosen"] = torch.tensor([float(r["ref_chosen"]) for r in rows])
        b["ref_rejected"] = torch.tensor([float(r["ref_rejected"]) for r in rows])
        b["n_pairs"] = len(rows)
        return b

    def loss(self, model: Any, batch: Mapping[str, Any]):
        lp = token_logprobs(model, batch["input_ids"], batch["attention_mask"])
        mask = batch["mask"].to(lp.dtype)
        summed = (lp * batch["dpo_mask"].to(lp.dtype)).sum(-1)
        n = batch["n_pairs"]
        loss, metrics = dpo_loss(summed[:n], summed[n:], batch["ref_chosen"].to(lp.device),
                                 batch["ref_rejected"].to(lp.device), self.beta, self.loss_type)
        if self.nll_coef:  # + alpha * length-normalized NLL of the chosen completions (Pang et al. 2024, eq. 1)
            nll = (-(lp[:n] * mask[:n]).sum(-1) / mask[:n].sum(-1).clamp(min=1)).mean()
            loss = loss + self.nll_coef * nll
            metrics["chosen_nll"] = float(nll.detach())
        return loss, metrics

    def num_targets(self, batch: Mapping[str, Any]) -> int:
        return int(batch["n_pairs"])

    def num_tokens(self, batch: Mapping[str, Any]) -> int:
        return int(batch["attention_mask"].sum())


def focus_masks(chosen_mask: Sequence[int], chosen_ids: Sequence[int], rejected_mask: Sequence[int],
                rejected_ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """The completion tokens where a chosen and a rejected completion differ: each side's completion minus the
    longest token prefix and suffix the two share (Focused-DPO, Zhang et al. 2025, arXiv 2502.11475, and
    Target-DPO, Wu et al. 2025, arXiv 2503.02783: the log-ratios count the differing span only).

    The shared prefix cancels in DPO anyway (same tokens, same context). The shared suffix does not: its tokens
    follow different contexts, and pushing down the rejected side's copy (``x * 4`` *then* ``\n``) lowers tokens
    every correct program needs too. A side whose differing span is empty (one completion extends the other)
    counts no tokens. Returns the two masks, aligned with the ids.
    """
    c = [i for i, m in enumerate(chosen_mask) if m]
    r = [i for i, m in enumerate(rejected_mask) if m]
    cut = min(len(c), len(r))
    pre = next((k for k in range(cut) if chosen_ids[c[k]] != rejected_ids[r[k]]), cut)
    suf = next((k for k in range(cut - pre) if chosen_ids[c[-1 - k]] != rejected_ids[r[-1 - k]]), cut - pre)
    out = []
    for mask, pos in ((chosen_mask, c), (rejected_mask, r)):
        keep = set(pos[pre:len(pos) - suf])
        out.append([int(i in keep) for i in range(len(mask))])
    return out[0], out[1]


def completion_row(prompt_ids: Sequence[int], completion_ids: Sequence[int], counted: bool = True) -> dict:
    """``{"ids", "mask"}`` of a completion after its prompt; ``counted=False`` masks it out (overlong)."""
    ids = list(prompt_ids) + list(completion_ids)
    return {"ids": ids, "mask": [0] * len(prompt_ids) + [int(counted)] * len(completion_ids)}


def end_token_id(tokenizer) -> int:
    """The token a finished response ends with (the chat template's end of turn, else EOS)."""
    from domainspec.common.models.generation import end_of_turn_ids
    ends = end_of_turn_ids(tokenizer)
    if ends:
        return ends[0]
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has neither an end-of-turn nor an EOS token")
    return tokenizer.eos_token_id


def encode_completions(tokenizer, prompt: str, completions: Sequence[str], max_new_tokens: int,
                       mask_overlong: bool = True) -> tuple[list[dict], list[bool]]:
    """Rows ``{"ids", "mask"}`` of completions of one rendered prompt, and which were cut at ``max_new_tokens``.

    The backends return text (the end token dropped), so the text is re-encoded: a finished completion gets
    the end token back; one as long as the budget was cut there, keeps no end token and, with
    ``mask_overlong``, no targets. Re-encoding may merge tokens differently from what was sampled; the
    old-policy logprobs are computed on these same ids, so the ratio stays consistent.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    end = end_token_id(tokenizer)
    rows, cut = [], []
    for c in completions:
        ids = tokenizer(c, add_special_tokens=False)["input_ids"]
        overlong = len(ids) >= max_new_tokens
        ids = ids[:max_new_tokens] if overlong else ids + [end]
        rows.append(completion_row(prompt_ids, ids, counted=not (overlong and mask_overlong)))
        cut.append(overlong)
    return rows, cut
