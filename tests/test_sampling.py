"""The one sampling config: validation, stage defaults kept under a partial YAML section, CLI flags."""
import argparse

import pytest

from data_helpers import config_error
from domainspec.common.config import Config, load_config
from domainspec.common.models.sampling import SamplingConfig, add_sampling_args, sampling_from_args, sampling_section

STAGE_SAMPLING = sampling_section("The stage's samples.", n=4, temperature=0.7, seed=1234)


class StageWithSampling(Config):
    sampling: STAGE_SAMPLING


def test_partial_section_keeps_the_stage_defaults(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("sampling:\n  n: 2\n")
    cfg = load_config(StageWithSampling, f)
    assert (cfg.sampling.n, cfg.sampling.temperature, cfg.sampling.seed) == (2, 0.7, 1234)
    assert StageWithSampling().sampling == SamplingConfig(n=4, temperature=0.7, seed=1234)
    assert StageWithSampling().sampling is not StageWithSampling().sampling  # no shared default instance
    assert "n=4" in StageWithSampling.model_fields["sampling"].description


def test_bad_sampling_value_names_the_yaml_line(tmp_path):
    msg = config_error(StageWithSampling, tmp_path / "s.yaml", "sampling:\n  n: 2\n  top_p: 0\n")
    assert "s.yaml:3" in msg and "sampling.top_p" in msg


def test_replace_validates_and_greedy_keeps_the_rest():
    cfg = SamplingConfig(n=4, temperature=0.7, max_new_tokens=32, stop=["\n\n"])
    assert cfg.greedy() == SamplingConfig(n=1, temperature=0.0, max_new_tokens=32, stop=["\n\n"])
    with pytest.raises(ValueError, match="empty stop"):
        cfg.replace(stop=[""])
    with pytest.raises(ValueError):
        cfg.replace(n=0)


def test_cli_flags_come_from_the_fields():
    p = argparse.ArgumentParser()
    add_sampling_args(p, SamplingConfig(max_new_tokens=64))
    args = p.parse_args(["--n", "3", "--temperature", "0.5", "--top-p", "0.9", "--seed", "7"])
    assert sampling_from_args(args) == SamplingConfig(n=3, temperature=0.5, top_p=0.9, seed=7, max_new_tokens=64)
    help_text = " ".join(p.format_help().split())
    assert f"--max-new-tokens MAX_NEW_TOKENS {SamplingConfig.model_fields['max_new_tokens'].description}" in help_text
    assert "(default 64)" in help_text
    with pytest.raises(SystemExit, match="--top-p"):
        sampling_from_args(p.parse_args(["--top-p", "0"]))
