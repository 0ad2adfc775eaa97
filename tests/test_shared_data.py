"""The shared-data guard of the tests: skip where the benchmark files are absent, fail under CI."""
import pytest
from data_helpers import needs_shared_data, shared_data, shared_data_dir


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINSPEC_BENCHMARK_DATA", str(tmp_path))
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text("{}\n")
    return tmp_path


def test_honours_the_benchmark_data_variable(data_dir):
    assert shared_data_dir() == data_dir
    assert shared_data("gsm8k/test.jsonl") == data_dir / "gsm8k" / "test.jsonl"


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_absent_data_skips_off_ci(data_dir, monkeypatch, ci):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="math/math500_test.jsonl"):
        shared_data("math/math500_test.jsonl")


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_absent_data_fails_under_ci_naming_the_path(data_dir, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=f"CI needs the benchmark data: .*{data_dir}/mbpp/mbpp.jsonl"):
        shared_data("mbpp/mbpp.jsonl")


def test_decorator_checks_every_path_before_the_test_runs(data_dir, monkeypatch):
    monkeypatch.setenv("CI", "true")
    ran = []

    def body(x):
        ran.append(x)

    with pytest.raises(pytest.fail.Exception, match="mbpp/mbpp.jsonl"):
        needs_shared_data("gsm8k/test.jsonl", "mbpp/mbpp.jsonl")(body)(1)
    assert ran == []
    needs_shared_data("gsm8k/test.jsonl")(body)(2)
    assert ran == [2]
