"""Reward-model losses against hand-computed values (math/rm_objectives.py).

Hand values: -log sigmoid(d) = log(1 + e^-d):
d = 1 -> 0.3132617, d = 2 -> 0.1269280, d = 3 -> 0.0485874, d = -1 -> 1.3132617, d = -2 -> 2.1269280.
"""
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from domainspec.math.rm_objectives import (ListwiseRMObjective, PairwiseRMObjective, listwise_loss,  # noqa: E402
                                           pair_accuracy, pairwise_loss)


def test_pairwise_loss_hand_value():
    loss = pairwise_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert loss.item() == pytest.approx((0.3132617 + 2.1269280) / 2, abs=1e-6)


def test_listwise_loss_hand_value_skips_uninformative_groups():
    rewards = torch.tensor([2.0, 0.0, 1.0, 0.5, -0.5, 3.0, 4.0])
    labels = torch.tensor([True, False, False, False, True, True, True])
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    loss, used = listwise_loss(rewards, labels, groups)
    g0 = (0.1269280 + 0.3132617) / 2  # positive 2 against negatives 0 and 1
    g1 = 1.3132617  # positive -0.5 against negative 0.5
    assert used == 2  # group 2 is all correct: no ranking signal
    assert loss.item() == pytest.approx((g0 + g1) / 2, abs=1e-6)


def test_listwise_two_by_two_is_mean_over_all_pairs():
    # Qwen2.5-Math-RM: -1/(k*m) sum over k positives x m negatives
    loss, _ = listwise_loss(torch.tensor([1.0, 3.0, 0.0, 2.0]), torch.tensor([True, True, False, False]),
                            torch.tensor([0, 0, 0, 0]))
    assert loss.item() == pytest.approx((0.3132617 + 1.3132617 + 0.0485874 + 0.3132617) / 4, abs=1e-6)


def test_listwise_without_signal_is_zero_with_graph():
    r = torch.tensor([1.0, 2.0], requires_grad=True)
    loss, used = listwise_loss(r, torch.tensor([True, True]), torch.tensor([0, 0]))
    assert used == 0 and loss.item() == 0.0
    loss.backward()  # still differentiable: a micro-batch without signal must not break the step
    assert r.grad is not None


def test_pair_accuracy_counts_ties_as_half():
    assert pair_accuracy(torch.tensor([1.0, 0.0, 2.0, 1.0]), torch.tensor([0.0, 1.0, 2.0, 0.5])) == pytest.approx(0.625)


class LookupModel:
    """reward = value of the sequence's first token (ids chosen so that is the test's number)."""

    def __call__(self, input_ids, attention_mask):
        vals = input_ids[:, 0].float() / 10.0 - 5.0
        return SimpleNamespace(logits=vals[:, None])


def _ids(reward):  # a sequence whose reward under LookupModel is `reward`
    return [int(round((reward + 5.0) * 10)), 7, 7]


def test_listwise_objective_collate_and_loss_end_to_end():
    obj = ListwiseRMObjective(pad_id=0)
    rows = [{"ids": [_ids(2.0), _ids(0.0)[:2], _ids(1.0)], "labels": [True, False, False]},
            {"ids": [_ids(0.5), _ids(-0.5)], "labels": [False, True]}]
    batch = obj.collate(rows)
    assert batch["input_ids"].shape == (5, 3)
    assert batch["attention_mask"][1].tolist() == [1, 1, 0]  # right padding
    assert obj.num_targets(batch) == 2
    loss, metrics = obj.loss(LookupModel(), batch)
    assert loss.item() == pytest.approx(((0.1269280 + 0.3132617) / 2 + 1.3132617) / 2, abs=1e-5)
    assert metrics["rm_pair_acc"] == pytest.approx((1.0 + 0.0) / 2)


def test_pairwise_objective_collate_and_loss_end_to_end():
    obj = PairwiseRMObjective(pad_id=0)
    rows = [{"chosen_ids": _ids(1.0), "rejected_ids": _ids(0.0)},
            {"chosen_ids": _ids(0.0), "rejected_ids": _ids(2.0)}]
    batch = obj.collate(rows)
    assert obj.num_targets(batch) == 2
    loss, metrics = obj.loss(LookupModel(), batch)
    assert loss.item() == pytest.approx((0.3132617 + 2.1269280) / 2, abs=1e-5)
    assert metrics["rm_pair_acc"] == pytest.approx(0.5)


def test_listwise_collate_rejects_mismatched_labels():
    with pytest.raises(ValueError, match="row 0: 2 responses but 1 labels"):
        ListwiseRMObjective(pad_id=0).collate([{"ids": [[1], [2]], "labels": [True]}])
