"""Data sources: local files through datasets' builders, folders, builtins, streaming, clear errors."""
from __future__ import annotations

import itertools
import json

import pytest

from domainspec.common.config import ConfigError
from domainspec.common.data.sources import DataError, DataSourceConfig, check_source, load_documents, load_text_dataset


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("streaming", [False, True])
def test_jsonl_with_text_field_and_limit(tmp_path, streaming):
    f = _jsonl(tmp_path / "d.jsonl", [{"content": f"doc {i}", "meta": i} for i in range(5)] + [{"content": " "}])
    src = DataSourceConfig(path=str(f), text_field="content", streaming=streaming)
    assert list(load_documents(src)) == [f"doc {i}" for i in range(5)]  # blank row dropped
    src = DataSourceConfig(path=str(f), text_field="content", streaming=streaming, limit=2)
    assert list(load_documents(src)) == ["doc 0", "doc 1"]


def test_non_streaming_is_a_datasets_dataset(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a b", "c d"], "n": [1, 2]}), f)
    ds = load_text_dataset(DataSourceConfig(path=str(f)))
    assert isinstance(ds, datasets.Dataset) and ds.column_names == ["text"] and ds["text"] == ["a b", "c d"]
    txt = tmp_path / "t.txt"
    txt.write_text("one\ntwo\n")
    assert list(load_documents(DataSourceConfig(path=str(txt)))) == ["one\ntwo\n"]
    assert list(load_documents(DataSourceConfig(path=str(txt), sample_by="line"))) == ["one", "two"]


@pytest.mark.parametrize("streaming", [False, True])
def test_folder_of_source_files(tmp_path, streaming):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def a():\n    return 1\n")
    (tmp_path / "b.py").write_text("B = 2\n")
    (tmp_path / "notes.md").write_text("not code")
    docs = list(load_documents(DataSourceConfig(path=str(tmp_path), streaming=streaming)))
    assert sorted(docs) == ["B = 2\n", "def a():\n    return 1\n"]


def test_builtins():
    code = list(itertools.islice(load_documents(DataSourceConfig(path="builtin:stdlib_code", limit=3)), 3))
    assert len(code) == 3 and all("def " in d or "import" in d for d in code)
    math = list(load_documents(DataSourceConfig(path="builtin:math_corpus", limit=5, streaming=True)))
    assert len(math) == 5 and all("\\boxed{" in d for d in math)


def test_missing_path_and_unknown_builtin(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        check_source(DataSourceConfig(path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(DataError, match="unknown builtin"):
        list(load_documents(DataSourceConfig(path="builtin:wikipedia")))
    assert issubclass(DataError, ConfigError)  # the CLI reports it as a config error (exit 2)


@pytest.mark.parametrize("streaming", [False, True])
def test_empty_corpus(tmp_path, streaming):
    (tmp_path / "e.jsonl").write_text("")
    _jsonl(tmp_path / "blank.jsonl", [{"text": ""}, {"text": "  \n"}])
    for name in ("e.jsonl", "blank.jsonl"):
        with pytest.raises(DataError, match="empty corpus"):
            list(load_documents(DataSourceConfig(path=str(tmp_path / name), streaming=streaming)))
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="no files with suffix"):
        list(load_documents(DataSourceConfig(path=str(tmp_path / "empty_dir"), streaming=streaming)))


@pytest.mark.parametrize("streaming", [False, True])
def test_bad_rows_name_file_and_row(tmp_path, streaming):
    f = _jsonl(tmp_path / "d.jsonl", [{"text": "ok"}, {"text": "ok"}, {"body": "x"}])
    with pytest.raises(DataError, match=r"d\.jsonl: row 3: field 'text' is missing"):
        list(load_documents(DataSourceConfig(path=str(f), streaming=streaming)))
    g = _jsonl(tmp_path / "g.jsonl", [{"body": "x"}])
    with pytest.raises(DataError, match=r"no field 'text'|row 1: field 'text'"):
        list(load_documents(DataSourceConfig(path=str(g), streaming=streaming)))
    h = tmp_path / "h.jsonl"
    h.write_text('{"text": "a"}\n{"text": oops}\n')
    with pytest.raises(DataError, match=r"h\.jsonl:2: not valid JSON"):
        list(load_documents(DataSourceConfig(path=str(h), streaming=streaming)))


def test_config_validation():
    with pytest.raises(Exception, match="weight"):
        DataSourceConfig(path="x", weight=0)
    with pytest.raises(Exception, match="extra|unknown|Extra"):
        DataSourceConfig(path="x", textfield="t")
