"""The one marker scheme (common/pipeline/markers.py) and typed stage results (StageResult)."""
import json

import pytest

from domainspec.common.artifacts import DataFileError
from domainspec.common.pipeline.markers import (Action, Reason, is_done, mark_running, may_resume, read_done,
                                                read_running, write_done)
from domainspec.common.pipeline.stages import StageResult


def test_done_marker_decides_skip_only_for_the_same_hash(tmp_path):
    assert is_done(tmp_path, "h1") == is_done(tmp_path / "missing", "h1")
    assert is_done(tmp_path, "h1").action is Action.RUN and is_done(tmp_path, "h1").reason is Reason.NOT_DONE
    m = write_done(tmp_path, "h1", {"loss": 1.5}, elapsed_s=2.0, launcher="local")
    d = is_done(tmp_path, "h1")
    assert (d.action, d.reason) == (Action.SKIP, Reason.UP_TO_DATE) and d.marker == m
    assert d.marker.result == {"loss": 1.5} and d.marker.elapsed_s == 2.0 and d.marker.info == {"launcher": "local"}
    other = is_done(tmp_path, "h2")
    assert (other.action, other.reason) == (Action.RUN, Reason.CHANGED) and other.marker.hash == "h1"
    assert f"{Action.SKIP:4}|{Reason.CHANGED}" == "skip|config or inputs changed"  # how the plan prints them


def test_running_and_done_markers_exclude_each_other(tmp_path):
    write_done(tmp_path, "h1")
    mark_running(tmp_path, "h2")
    assert read_done(tmp_path) is None and read_running(tmp_path).hash == "h2"
    assert may_resume(tmp_path, "h2") and not may_resume(tmp_path, "h1")
    write_done(tmp_path, "h2")
    assert read_running(tmp_path) is None and not may_resume(tmp_path, "h2")


def test_steps_share_a_folder_without_touching_each_other(tmp_path):
    write_done(tmp_path, "a", step="samples")
    mark_running(tmp_path, "b", step="rm")
    write_done(tmp_path, "c")
    assert is_done(tmp_path, "a", "samples").action is Action.SKIP
    assert is_done(tmp_path, "a", "rm").reason is Reason.NOT_DONE and may_resume(tmp_path, "b", "rm")
    assert is_done(tmp_path, "c").action is Action.SKIP
    assert sorted(p.name for p in tmp_path.iterdir()) == [".done.json", ".done.samples.json", ".running.rm.json"]
    with pytest.raises(ValueError, match="plain name"):
        write_done(tmp_path, "x", step="../up")
    with pytest.raises(ValueError, match="marker fields"):
        write_done(tmp_path, "x", at=3)


def test_damaged_marker_reruns_and_names_the_file(tmp_path):
    (tmp_path / ".done.json").write_text('{"hash": ')
    assert is_done(tmp_path, "h").reason is Reason.UNREADABLE
    with pytest.raises(DataFileError, match=r"\.done\.json"):
        read_done(tmp_path)
    (tmp_path / ".done.json").write_text(json.dumps({"result": 1}))
    with pytest.raises(DataFileError, match="not a marker"):
        read_done(tmp_path)
    (tmp_path / ".running.json").write_text("[")
    assert not may_resume(tmp_path, "h")


def test_stage_result_from_a_plain_dict_and_back():
    rows = [{"round": 0, "acc": 0.5, "cell": {"x": 1}}, {"round": 1, "acc": 0.75}]
    raw = {"value": 4, "name": "x", "none": None, "ok": True, "nested": {"loss": 1.25, "t": rows},
           "scalars": [1, 2], "empty": [], "path": __import__("pathlib").Path("/a/b")}
    r = StageResult.of(raw)
    assert r.figures == {"value": 4, "name": "x", "none": None, "ok": True, "nested.loss": 1.25, "path": "/a/b"}
    assert r.tables == {"nested.t": rows}
    back = StageResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and back.flat()["nested.t"] == rows and StageResult.of(r) is r
    assert StageResult.of(None) == StageResult() == StageResult.from_dict(None)
    with pytest.raises(TypeError, match="p/a: a stage returns a StageResult or a dict"):
        StageResult.of([1], where="p/a")
    with pytest.raises(ValueError, match="marker: table 't': expected a list of rows"):
        StageResult.from_dict({"figures": {}, "tables": {"t": [1]}}, where="marker")
    with pytest.raises(ValueError, match="expected"):
        StageResult.from_dict({"metrics": {}}, where="marker")
