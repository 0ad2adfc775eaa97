"""GRPO / DPO losses and advantages (common/train/rl_objectives.py) against hand-computed values, per knob."""
import math

import pytest
import torch

from domainspec.common.train.rl_objectives import (DPOObjective, GRPOLossConfig, GRPOObjective, clipped_pg_loss,
                                                   completion_row, dpo_loss, focus_masks, group_advantages, kl_k3,
                                                   score_logprobs, token_logprobs)
from trainer_fixture import tiny_model


@pytest.mark.parametrize("rewards, g, scale, expected", [
    # mean 0.25; sample std sqrt((0.75^2 + 3 * 0.25^2) / 3) = 0.5
    ([1, 0, 0, 0], 4, True, [1.5, -0.5, -0.5, -0.5]),
    ([1, 0, 0, 0], 4, False, [0.75, -0.25, -0.25, -0.25]),          # Dr. GRPO: no std division
    ([1, 1, 0, 0, 2, 2, 2, 2], 4, False, [0.5, 0.5, -0.5, -0.5, 0, 0, 0, 0]),  # groups are independent
    ([3, 3], 2, True, [0.0, 0.0]),                                    # equal rewards: no signal, no NaN
    ([0, 2], 2, True, [-1 / math.sqrt(2), 1 / math.sqrt(2)]),          # std of {0, 2} = sqrt(2)
])
def test_group_advantages(rewards, g, scale, expected):
    got = group_advantages(rewards, g, scale).tolist()
    assert got == pytest.approx(expected, abs=1e-3)


def test_group_advantages_refuses_a_ragged_layout():
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages([1, 0, 1], 4)


def _one_token(ratio: float, adv: float):
    old = torch.tensor([[math.log(0.5)]])
    logp = old + math.log(ratio)
    return logp, old, torch.tensor([adv]), torch.ones(1, 1)


@pytest.mark.parametrize("ratio, adv, low, high, loss, clipped", [
    (1.5, 1.0, 0.2, 0.28, -1.28, 1.0),   # positive advantage, ratio above 1 + clip_high: clipped (DAPO 0.28)
    (1.5, 1.0, 0.2, 0.20, -1.20, 1.0),   # symmetric PPO clip
    (1.1, 1.0, 0.2, 0.28, -1.10, 0.0),   # inside the range
    (0.5, 1.0, 0.2, 0.28, -0.50, 0.0),   # positive advantage, low ratio: the unclipped term is the min
    (0.5, -1.0, 0.2, 0.28, 0.80, 1.0),   # negative advantage, ratio below 1 - clip_low: clipped
    (0.5, -1.0, 0.4, 0.28, 0.60, 1.0),   # a wider low range
    (1.5, -1.0, 0.2, 0.28, 1.50, 0.0),   # negative advantage, high ratio: never clipped (pessimistic bound)
])
def test_clip_low_high(ratio, adv, low, high, loss, clipped):
    got, m = clipped_pg_loss(*_one_token(ratio, adv), clip_low=low, clip_high=high)
    assert float(got) == pytest.approx(loss, abs=1e-5)
    assert m["clip_fraction"] == clipped
    assert m["ratio"] == pytest.approx(ratio, abs=1e-5)


def test_a_clipped_token_has_no_gradient_and_an_unclipped_one_has_minus_ratio_times_advantage():
    for ratio, grad in ((1.5, 0.0), (1.1, -1.1)):
        logp, old, adv, mask = _one_token(ratio, 1.0)
        logp.requires_grad_(True)
        clipped_pg_loss(logp, old, adv, mask)[0].backward()
        assert float(logp.grad) == pytest.approx(grad, abs=1e-5)


# two sequences, 1 and 3 counted tokens, ratio 1 everywhere: per-token loss = -A: [-1] and [2, 2, 2]
@pytest.mark.parametrize("aggregation, expected", [
    ("token", (-1 + 6) / 4),             # DAPO: every token of the step weighs the same
    ("sequence", (-1 + 2) / 2),          # GRPO: mean per sequence, then over sequences
    ("constant", (-1 / 4 + 6 / 4) / 2),  # Dr. GRPO: sum per sequence / max_tokens (4), then mean
])
def test_token_vs_sequence_aggregation(aggregation, expected):
    logp = torch.full((2, 4), -1.0)
    mask = torch.tensor([[1, 0, 0, 0], [1, 1, 1, 0]])
    got, _ = clipped_pg_loss(logp, logp.clone(), torch.tensor([1.0, -2.0]), mask, aggregation=aggregation,
                             max_tokens=4)
    assert float(got) == pytest.approx(expected)


def test_constant_aggregation_needs_the_budget():
    with pytest.raises(ValueError, match="max_tokens"):
        clipped_pg_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), aggregation="constant")


@pytest.mark.parametrize("p, q, expected", [
    (0.5, 0.25, 0.25 / 0.5 - math.log(0.25 / 0.5) - 1),  # k3 = r - log r - 1, r = q / p = 0.5: 0.1931
    (0.5, 0.5, 0.0),                                     # same distribution: 0
    (0.1, 0.9, 9 - math.log(9) - 1),
])
def test_kl_k3(p, q, expected):
    assert float(kl_k3(torch.tensor(math.log(p)), torch.tensor(math.log(q)))) == pytest.approx(expected, abs=1e-5)


def test_kl_coefficient_adds_the_k3_term_to_the_loss():
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    k3 = 0.5 + math.log(2) - 1
    for coef in (0.0, 0.1, 0.04):
        loss, m = clipped_pg_loss(logp, logp.clone(), torch.tensor([0.0]), torch.ones(1, 1), ref_logp=ref,
                                  kl_coef=coef)
        assert float(loss) == pytest.approx(coef * k3, abs=1e-6)
        assert m["kl"] == pytest.approx(k3, abs=1e-6)  # measured whatever the coefficient


@pytest.mark.parametrize("pc, pr, rc, rr, beta", [
    (-1.0, -2.0, -1.5, -1.5, 0.1),   # margin 0.1 * (0.5 + 0.5) = 0.1
    (-3.0, -1.0, -2.0, -2.0, 0.5),   # the policy prefers the rejected one: margin -1
    (-1.0, -1.0, -1.0, -1.0, 0.1),   # policy = reference: log 2
])
def test_dpo_loss_hand_computed(pc, pr, rc, rr, beta):
    margin = beta * ((pc - rc) - (pr - rr))
    loss, m = dpo_loss(torch.tensor([pc]), torch.tensor([pr]), torch.tensor([rc]), torch.tensor([rr]), beta)
    assert float(loss) == pytest.approx(math.log1p(math.exp(-margin)), abs=1e-6)
    assert m["reward_margin"] == pytest.approx(margin, abs=1e-6)
    assert m["reward_accuracy"] == float(margin > 0)


@pytest.mark.parametrize("pc, pr, rc, rr, beta, expected", [
    (-1.0, -2.0, -1.5, -1.5, 0.1, (1.0 - 5.0) ** 2),    # h = 1, target 1 / (2 * 0.1) = 5
    (-1.0, -1.0, -1.0, -1.0, 0.5, 1.0),                 # policy = reference: h = 0, target 1
    (0.0, -2.0, 0.0, 0.0, 0.25, 0.0),                   # at the target: no loss (and no push beyond it)
    (0.0, -5.0, 0.0, 0.0, 0.25, 9.0),                   # past the target: pulled back
])
def test_ipo_loss_hand_computed(pc, pr, rc, rr, beta, expected):
    loss, m = dpo_loss(torch.tensor([pc]), torch.tensor([pr]), torch.tensor([rc]), torch.tensor([rr]), beta, "ipo")
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert m["reward_margin"] == pytest.approx(beta * ((pc - rc) - (pr - rr)), abs=1e-6)


def test_unknown_dpo_loss_type_is_an_error():
    with pytest.raises(ValueError, match="unknown DPO loss_type 'kto'"):
        dpo_loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]), 0.1, "kto")


def _rows():
    return [completion_row([5, 6, 7], [8, 9]), completion_row([5, 6], [10, 11, 12, 13]),
            completion_row([1, 2, 3, 4], [3], counted=False)]


def test_token_logprobs_match_log_softmax_and_ignore_padding():
    model = tiny_model().eval()
    rows = _rows()
    got = score_logprobs(model, rows, pad_id=0, batch_size=3)
    for r, lp in zip(rows, got):
        ids = torch.tensor([r["ids"]])
        with torch.no_grad():
            ref = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])
        assert lp[0] == 0.0 and lp[1:] == pytest.approx(ref.squeeze(-1).tolist(), abs=1e-5)
    hot = score_logprobs(model, rows[:1], pad_id=0, temperature=2.0)[0]
    assert hot != pytest.approx(got[0], abs=1e-4)  # temperature divides the logits


def test_grpo_objective_at_the_old_policy_has_ratio_one_zero_kl_and_the_advantage_loss():
    model = tiny_model().eval()
    rows = _rows()
    lps = score_logprobs(model, rows, 0)
    for r, lp, a in zip(rows, lps, (1.0, -0.5, 3.0)):
        r.update(old_logp=lp, ref_logp=lp, advantage=a)
    obj = GRPOObjective(0, GRPOLossConfig(), max_tokens=8)
    batch = obj.collate(rows)
    assert obj.num_targets(batch) == 2 + 4  # the overlong (masked) row counts no token
    loss, m = obj.loss(model, batch)
    assert float(loss.detach()) == pytest.approx((-1.0 * 2 + 0.5 * 4) / 6, abs=1e-5)
    assert m["kl"] == pytest.approx(0.0, abs=1e-6) and m["clip_fraction"] == 0.0
    assert m["ratio"] == pytest.approx(1.0, abs=1e-5)
    seq = GRPOObjective(0, GRPOLossConfig(aggregation="sequence"), max_tokens=8)
    assert seq.num_targets(seq.collate(rows)) == 3


def test_dpo_objective_against_itself_is_log_two_and_learns():
    model = tiny_model()
    c, r = completion_row([5, 6], [7, 8]), completion_row([5, 6], [9, 10, 11])
    lps = score_logprobs(model, [c, r], 0)
    row = {"chosen_ids": c["ids"], "chosen_mask": c["mask"], "rejected_ids": r["ids"], "rejected_mask": r["mask"],
           "ref_chosen": sum(x for x, m in zip(lps[0], c["mask"]) if m),
           "ref_rejected": sum(x for x, m in zip(lps[1], r["mask"]) if m)}
    obj = DPOObjective(0, beta=0.1)
    batch = obj.collate([row])
    loss, _ = obj.loss(model, batch)
    assert float(loss.detach()) == pytest.approx(math.log(2), abs=1e-5)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for _ in range(5):
        opt.zero_grad()
        obj.loss(model, batch)[0].backward()
        opt.step()
    loss, m = obj.loss(model, batch)
    assert float(loss.detach()) < math.log(2) and m["reward_accuracy"] == 1.0


def test_token_logprobs_of_a_padded_row_equal_the_unpadded_ones():
    model = tiny_model().eval()
    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        both = token_logprobs(model, ids, mask)
        alone = token_logprobs(model, ids[1:, :2], mask[1:, :2])
    assert both[1, :2].tolist() == pytest.approx(alone[0].tolist(), abs=1e-5)
    assert both[1, 2:].tolist() == [0.0, 0.0]


def test_dpo_nll_term_adds_the_chosen_length_normalized_nll():
    model = tiny_model().eval()
    c, r = completion_row([5, 6], [7, 8]), completion_row([5, 6], [9, 10, 11])
    lps = score_logprobs(model, [c, r], 0)
    chosen = sum(x for x, m in zip(lps[0], c["mask"]) if m)
    row = {"chosen_ids": c["ids"], "chosen_mask": c["mask"], "rejected_ids": r["ids"], "rejected_mask": r["mask"],
           "ref_chosen": chosen, "ref_rejected": sum(x for x, m in zip(lps[1], r["mask"]) if m)}
    obj = DPOObjective(0, beta=0.1, nll_coef=0.5)
    loss, m = obj.loss(model, obj.collate([row]))
    assert m["chosen_nll"] == pytest.approx(-chosen / 2, abs=1e-5)
    assert float(loss.detach()) == pytest.approx(math.log(2) + 0.5 * (-chosen / 2), abs=1e-5)


@pytest.mark.parametrize("chosen, rejected, keep_c, keep_r", [
    ([1, 2, 3, 9], [1, 2, 4, 9], [0, 0, 1, 0], [0, 0, 1, 0]),        # one token differs: only it counts
    ([1, 2, 9], [1, 5, 6, 9], [0, 1, 0], [0, 1, 1, 0]),              # spans of different lengths
    ([1, 2, 9], [1, 2, 3, 9], [0, 0, 0], [0, 0, 1, 0]),              # chosen's span empty: it counts nothing
    ([7, 8], [5, 6], [1, 1], [1, 1]),                                # nothing shared: everything counts
    ([1, 1, 1], [1, 1, 1, 1], [0, 0, 0], [0, 0, 0, 1]),              # prefix and suffix never overlap
])
def test_focus_masks_keep_the_span_between_the_shared_prefix_and_suffix(chosen, rejected, keep_c, keep_r):
    prompt = [50, 51]   # prompt tokens equal on both sides are never counted
    c, r = completion_row(prompt, chosen), completion_row(prompt, rejected)
    mc, mr = focus_masks(c["mask"], c["ids"], r["mask"], r["ids"])
    assert mc == [0, 0] + keep_c and mr == [0, 0] + keep_r


def test_dpo_objective_sums_the_log_ratios_over_the_focus_masks_and_the_nll_over_the_completion():
    model = tiny_model().eval()
    c, r = completion_row([5, 6], [7, 8, 9]), completion_row([5, 6], [7, 4, 9])
    mc, mr = focus_masks(c["mask"], c["ids"], r["mask"], r["ids"])
    lps = score_logprobs(model, [c, r], 0)
    ref_c, ref_r = lps[0][3] - 0.5, lps[1][3] + 0.25   # a reference that differs on the focused token only
    row = {"chosen_ids": c["ids"], "chosen_mask": c["mask"], "rejected_ids": r["ids"], "rejected_mask": r["mask"],
           "chosen_dpo_mask": mc, "rejected_dpo_mask": mr, "ref_chosen": ref_c, "ref_rejected": ref_r}
    obj = DPOObjective(0, beta=0.1, nll_coef=1.0)
    loss, m = obj.loss(model, obj.collate([row]))
    margin = 0.1 * ((lps[0][3] - ref_c) - (lps[1][3] - ref_r))   # 0.1 * (0.5 + 0.25)
    assert m["reward_margin"] == pytest.approx(margin, abs=1e-5)
    nll = -sum(lps[0][2:]) / 3
    assert float(loss.detach()) == pytest.approx(-math.log(1 / (1 + math.exp(-margin))) + nll, abs=1e-5)
