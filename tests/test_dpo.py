"""DPO from execution feedback (coder/dpo.py): pair-building rules, tokenized rows with reference logprobs,
config checks, and (slow) a micro run end to end."""
import json
import math

import pytest

from domainspec.coder.dpo import DPOConfig, PairConfig, build_pairs, pair_rows
from domainspec.common.config import load_config


def _s(task, i, completion, status):
    return {"task_id": task, "sample_index": i, "completion": completion, "status": status}


SAMPLES = [
    _s("A", 0, "return x+1", "passed"), _s("A", 1, "return  x+1 ", "passed"),   # a whitespace duplicate
    _s("A", 2, "return x", "failed"), _s("A", 3, "while True: pass", "timeout"), _s("A", 4, "retur", "error"),
    _s("A", 5, "return x - 1", "failed"), _s("A", 6, "return x + 1", "passed"),
    _s("B", 0, "ok", "passed"), _s("B", 1, "ok2", "passed"),                     # all pass: no pair
    _s("C", 0, "bad", "failed"), _s("C", 1, "worse", "failed"),                   # all fail: no pair
    _s("D", 1, "fine", "passed"), _s("D", 0, "wrong", "failed"),                  # order by sample index
]


@pytest.mark.parametrize("cfg, expected_a, dups", [
    # dedup: "return  x+1 " equals "return x+1"; 2 distinct passing x 4 failing, capped at 4, least-used first
    (PairConfig(), [("return x+1", "return x"), ("return x + 1", "while True: pass"), ("return x+1", "retur"),
                    ("return x + 1", "return x - 1")], 1),
    # timeouts and errors are not rejected programs here
    (PairConfig(reject=["failed"], max_pairs_per_task=10),
     [("return x+1", "return x"), ("return x + 1", "return x - 1"), ("return x+1", "return x - 1"),
      ("return x + 1", "return x")], 1),
    # without dedup the duplicate is a program of its own
    (PairConfig(dedup=False, max_pairs_per_task=3, reject=["failed"]),
     [("return x+1", "return x"), ("return  x+1 ", "return x - 1"), ("return x + 1", "return x")], 0),
])
def test_pair_rules(cfg, expected_a, dups):
    pairs, stats = build_pairs(SAMPLES, cfg)
    assert [(p["chosen"], p["rejected"]) for p in pairs if p["task_id"] == "A"] == expected_a
    assert [(p["chosen"], p["rejected"]) for p in pairs if p["task_id"] == "D"] == [("fine", "wrong")]
    assert {p["task_id"] for p in pairs} == {"A", "D"}
    assert stats["all_passed"] == 1 and stats["all_failed"] == 1 and stats["tasks_with_pairs"] == 2
    assert stats["duplicates_dropped"] == dups and stats["pairs"] == len(pairs)


def test_pairs_are_never_repeated_and_capped_by_the_combinations():
    samples = [_s("T", 0, "good", "passed"), _s("T", 1, "bad1", "failed"), _s("T", 2, "bad2", "failed")]
    pairs, _ = build_pairs(samples, PairConfig(max_pairs_per_task=10))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("good", "bad1"), ("good", "bad2")]


class _Tok:
    """A character tokenizer with a ChatML-like end-of-turn token (id 2) and pad 0."""
    pad_token_id, eos_token_id, chat_template = 0, 1, "<|im_end|>"

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [3 + (ord(c) % 90) for c in text]}

    def get_vocab(self):
        return {"<|im_end|>": 2}


def test_pair_rows_mask_the_prompt_and_hold_the_references_summed_logprobs():
    from domainspec.common.train.rl_objectives import score_logprobs
    from trainer_fixture import tiny_model
    model = tiny_model().eval()
    rows = pair_rows([{"task_id": "T", "chosen": "ab", "rejected": "xyz"}], {"T": "PROMPT"}, _Tok(), model,
                     max_new_tokens=16)
    r = rows[0]
    assert r["chosen_ids"][-1] == 2 and r["chosen_mask"] == [0] * 6 + [1] * 3   # 2 chars + end of turn
    assert r["rejected_mask"] == [0] * 6 + [1] * 4
    lp = score_logprobs(model, [{"ids": r["chosen_ids"], "mask": r["chosen_mask"]}], 0)[0]
    assert r["ref_chosen"] == pytest.approx(sum(lp[6:]), abs=1e-5)


def test_focused_pair_rows_count_the_differing_tokens_in_the_references_sums():
    from domainspec.common.train.rl_objectives import score_logprobs
    from trainer_fixture import tiny_model
    model = tiny_model().eval()
    rows = pair_rows([{"task_id": "T", "chosen": "x*2", "rejected": "x*45"}], {"T": "PROMPT"}, _Tok(), model,
                     max_new_tokens=16, focus="diff")
    r = rows[0]   # shared prefix "x*", shared suffix: the end of turn; the spans are "2" and "45"
    assert r["chosen_dpo_mask"] == [0] * 6 + [0, 0, 1, 0] and r["rejected_dpo_mask"] == [0] * 6 + [0, 0, 1, 1, 0]
    assert r["chosen_mask"] == [0] * 6 + [1] * 4          # the NLL term still sees the whole completion
    lp = score_logprobs(model, [{"ids": r["rejected_ids"], "mask": r["rejected_mask"]}], 0)[0]
    assert r["ref_rejected"] == pytest.approx(lp[8] + lp[9], abs=1e-5)


@pytest.mark.parametrize("override, message", [
    ("sampling.n=1", "n >= 2"), ("sampling.temperature=0", "temperature > 0"),
    ("tasks.source=mbpp", "needs tasks.path"), ("beta=0", "greater than 0"), ("pairs.reject=[]", "at least 1"),
    ("focus=middle", "'completion' or 'diff'"), ("loss_type=kto", "'sigmoid' or 'ipo'")])
def test_bad_dpo_config_is_refused(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(DPOConfig, None, [override])


@pytest.mark.parametrize("variant", [[], ["focus=diff", "loss_type=ipo", "beta=0.25"]])
def test_micro_dpo_run_trains_on_executed_pairs_and_skips_finished_steps(tmp_path, monkeypatch, variant):
    """Real pair building, training and scoring on a micro model; the sampling is scripted (a random model
    rarely passes a test): sample 0 of each task is its reference body (passes), sample 1 a wrong one."""
    import domainspec.coder.dpo as dpo_mod
    from domainspec.coder.dpo import run_dpo
    calls = []

    def scripted(cfg, backend, bench, tasks, render, out):
        calls.append(len(tasks))
        return [s for t in tasks for s in (_s(t.task_id, 0, t.data["canonical_solution"], "passed"),
                                            _s(t.task_id, 1, "    return None\n", "failed"))]

    monkeypatch.setattr(dpo_mod, "sample_and_execute", scripted)
    overrides = ["model.name_or_path=tiny", "model.tiny.hidden_size=32", "model.tiny.num_hidden_layers=1",
                 "model.tiny.intermediate_size=64", "model.tiny.num_attention_heads=2",
                 "model.tiny.num_key_value_heads=1", "tasks.num=4", "eval.toy_tasks=2",
                 "eval.sampling.max_new_tokens=8", "train.max_steps=2", "train.global_batch_size=2",
                 "train.micro_batch_size=2", "train.lr=1e-3"] + variant
    summary = run_dpo(load_config(DPOConfig, None, overrides), tmp_path)
    assert summary["pairs"]["pairs"] == 4 and summary["steps"] == 2
    losses = [json.loads(x)["loss"] for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    start = 4.0 if variant else math.log(2)   # IPO at beta 0.25: (0 - 1 / (2 * 0.25))^2; DPO: log 2
    assert losses and all(0 < v < 1.5 * start for v in losses)  # finite, near the start
    assert (tmp_path / "final").resolve() == (tmp_path / "train" / "final").resolve()
    assert summary["toy_pass@1"]["start"] is not None and summary["toy_pass@1"]["end"] is not None
    mtime = (tmp_path / "train" / "final" / "model.safetensors").stat().st_mtime
    assert run_dpo(load_config(DPOConfig, None, overrides), tmp_path)["toy_pass@1"] == summary["toy_pass@1"]
    assert calls == [4] and (tmp_path / "train" / "final" / "model.safetensors").stat().st_mtime == mtime
    (tmp_path / ".done.dpo.json").unlink()  # killed before the end: the finished pairs step is not redone
    run_dpo(load_config(DPOConfig, None, overrides), tmp_path)
    assert calls == [4]
    # other train settings in the same folder: the pairs are reused, train/final is retrained and scored anew
    # (not the score of the earlier weights at the same path)
    from domainspec.common.pipeline.markers import read_done
    first_eval = read_done(tmp_path / "eval").hash
    run_dpo(load_config(DPOConfig, None, overrides + ["beta=0.5"]), tmp_path)
    assert calls == [4] and (tmp_path / "train" / "final" / "model.safetensors").stat().st_mtime != mtime
    assert read_done(tmp_path / "eval").hash != first_eval
