"""Stage configs check benchmark names against the registry: a config error with its YAML line and the known names."""
from __future__ import annotations

import pytest

from domainspec.common.config import ConfigError
from domainspec.common.pipeline.plan import load_plan
from domainspec.eval.benchmarks.registry import benchmark_names, check_math, check_registered

PIPE = """\
workdir: {wd}
pipelines:
  p:
    stages:
      ev:
        type: eval
        config:
          benchmark: {bench}
          model: tiny
      me:
        type: math_eval
        config:
          eval:
            benchmarks:
              - {{name: {math}, path: data.jsonl}}
"""


def plan(tmp_path, bench="humaneval", math="gsm8k"):
    f = tmp_path / "pipe.yaml"
    f.write_text(PIPE.format(wd=tmp_path / "wd", bench=bench, math=math))
    return load_plan(f)


def test_registered_names_validate(tmp_path):
    stages = {s.name: s for s in plan(tmp_path, "mbpp", "math").pipelines["p"]}
    assert stages["ev"].config.benchmark == "mbpp"
    assert stages["me"].config.eval.benchmarks[0].name == "math"


def test_unknown_benchmark_is_a_config_error_with_line_and_known_names(tmp_path):
    with pytest.raises(ConfigError) as e:
        plan(tmp_path, bench="hellaswag")
    assert ("pipe.yaml:8: pipelines.p.stages.ev.config.benchmark: Value error, unknown benchmark 'hellaswag'; "
            f"registered: {', '.join(benchmark_names())}") in str(e.value)
    assert "gsm8k, humaneval, " in str(e.value) and "mbpp, mbpp_plus, minerva_math" in str(e.value)


def test_math_only_places_refuse_a_code_benchmark(tmp_path):
    with pytest.raises(ConfigError) as e:
        plan(tmp_path, math="mbpp")
    msg = str(e.value)
    assert "pipe.yaml:15: pipelines.p.stages.me.config.eval.benchmarks.0.name" in msg
    assert ("code benchmark 'mbpp' where a math benchmark is needed; math benchmarks: aime24, amc23, asdiv, cmath, "
            "college_math, gaokao2023en, gsm8k, math, math23k, minerva_math, olympiadbench, svamp") in msg


def test_validators_follow_the_registry():
    assert benchmark_names("code") == [
        "humaneval", "humaneval-x-cpp", "humaneval-x-go", "humaneval-x-java", "humaneval-x-js", "humaneval-x-rust",
        "humaneval_plus", "mbpp", "mbpp_plus", "multipl-e-cpp", "multipl-e-go", "multipl-e-java", "multipl-e-js",
        "multipl-e-php", "multipl-e-rs", "multipl-e-sh", "multipl-e-ts"]
    assert benchmark_names("math") == ["aime24", "amc23", "asdiv", "cmath", "college_math", "gaokao2023en", "gsm8k",
                                       "math", "math23k", "minerva_math", "olympiadbench", "svamp"]
    assert check_registered("gsm8k") == "gsm8k" and check_math("math") == "math"
    with pytest.raises(ValueError, match="unknown benchmark 'nope' where a math benchmark is needed"):
        check_math("nope")
