"""Reward model (math/reward_model.py): trains on the shared loop, saves a loadable HF folder, reloads."""
import json

import pytest

torch = pytest.importorskip("torch")

from domainspec.common.models.tiny import build_tiny_model  # noqa: E402
from domainspec.common.train.loop import TrainConfig  # noqa: E402
from domainspec.math.reward_model import (RewardModelConfig, load_reward_model, pairwise_accuracy, score,  # noqa: E402
                                          split_groups, train_reward_model)


@pytest.fixture(scope="module")
def micro_lm(tmp_path_factory):
    texts = [f"Question: what is {a} + {b}?\nThe answer is \\boxed{{{a + b}}}" for a in range(10) for b in range(10)]
    return build_tiny_model(tmp_path_factory.mktemp("lm"), texts=texts, vocab_size=300, hidden_size=32,
                            num_hidden_layers=1, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2)


def _groups(n, seed=0):
    # correct responses say "checked", wrong ones "guessed": a cue a tiny RM can learn in a few steps
    import random
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        good = [f"I checked it: \\boxed{{{a + b}}}", f"Checked twice, \\boxed{{{a + b}}}"]
        bad = [f"I guessed: \\boxed{{{a + b + 1}}}", f"Just guessed \\boxed{{{a * b + 3}}}"]
        out.append({"question": f"What is {a} + {b}?", "responses": good + bad, "labels": [True, True, False, False]})
    return out


@pytest.mark.parametrize("loss", ["listwise", "pairwise"])
def test_rm_learns_a_cue_saves_and_reloads(micro_lm, tmp_path, loss):
    cfg = RewardModelConfig(loss=loss, max_length=64, heldout_fraction=0.25,
                            train=TrainConfig(lr=3e-3, schedule="constant", warmup_ratio=0.0, weight_decay=0.0,
                                              max_steps=40, global_batch_size=4, micro_batch_size=4, save_every=0,
                                              log_every=10, progress=False))
    res = train_reward_model(cfg, _groups(40), tmp_path, init_from=micro_lm)
    assert res["num_groups"] == 10 and res["num_pairs"] == 40 and res["train_questions"] == 30
    assert res["pairwise_accuracy"] > 0.9, res
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 40 and rows[-1]["loss"] < rows[0]["loss"]
    # the folder is a plain transformers sequence-classification model with one label
    from transformers import AutoModelForSequenceClassification
    plain = AutoModelForSequenceClassification.from_pretrained(res["path"])
    assert plain.config.num_labels == 1 and plain.config.pad_token_id is not None
    model, tok = load_reward_model(res["path"])
    held = _groups(8, seed=99)
    qs = [g["question"] for g in held for _ in g["responses"]]
    rs = [r for g in held for r in g["responses"]]
    s1 = score(model, tok, qs, rs, max_length=64, batch_size=3)
    s2 = score(model, tok, qs, rs, max_length=64, batch_size=32)  # batching and padding do not change a score
    assert s1 == pytest.approx(s2, abs=1e-4)
    # transformers' own forward (reward at the last non-pad token) gives the same numbers
    enc = tok.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)  # template is present
    assert enc
    from domainspec.math.reward_model import encode
    ids = torch.tensor([encode(tok, qs[0], rs[0], 64)])
    assert plain(input_ids=ids).logits[0, 0].item() == pytest.approx(s1[0], abs=1e-4)
    assert pairwise_accuracy(model, tok, held, 64)["pairwise_accuracy"] > 0.9


def test_split_groups_holds_out_only_informative_questions():
    groups = _groups(10) + [{"question": "all right", "responses": ["a", "b"], "labels": [True, True]}]
    train, held = split_groups(groups, 0.3, seed=1)
    assert len(held) == 3 and len(train) == 7
    assert not {g["question"] for g in train} & {g["question"] for g in held}
    assert "all right" not in {g["question"] for g in train + held}


def test_rm_without_signal_is_a_clear_error(micro_lm, tmp_path):
    with pytest.raises(ValueError, match="none of 1 questions has both correct and incorrect"):
        train_reward_model(RewardModelConfig(), [{"question": "q", "responses": ["a"], "labels": [True]}], tmp_path,
                           init_from=micro_lm)
