"""A training stage run through the pipeline runner with the deepspeed launcher as 2 CPU ranks."""
import json
import shutil

import pytest
from pipeline_helpers import one_stage_pipeline

from domainspec.common.cli import main
from domainspec.common.pipeline.markers import read_done

pytest.importorskip("deepspeed")


def test_cpt_stage_under_deepspeed_launcher(tmp_path, monkeypatch):
    if shutil.which("deepspeed") is None:
        pytest.skip("the deepspeed launcher is not on PATH")
    from domainspec.common.models.loading import tiny_model_path
    model = tiny_model_path()  # built once here so the two ranks do not race to build it
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    f, stage = one_stage_pipeline(tmp_path, "cpt", {
        "model": {"name_or_path": str(model)},
        "seq_len": 64,
        "max_documents": 32,
        "data": [{"path": "builtin:math_corpus", "limit": 32}],
        "decontam": {"enabled": False},
        "train": {"lr": 2.0e-3, "max_steps": 3, "global_batch_size": 4, "micro_batch_size": 1, "log_every": 1,
                  "progress": False, "zero_stage": 2}},
        launcher={"kind": "deepspeed", "nproc_per_node": 2, "cpu": True, "master_port": 29731})
    assert main(["run", str(f)]) == 0, (stage / "launcher.log").read_text()[-3000:]
    log = (stage / "launcher.log").read_text()
    assert "world size 2 | ZeRO-2" in log
    rows = [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (stage / "final" / "config.json").exists()
    marker = read_done(stage)
    assert marker.info["launcher"] == "deepspeed" and marker.info["world_size"] == 2
    assert marker.result["figures"]["steps"] == 3  # the StageResult rank 0 handed back
    # the second run skips it without launching anything
    assert main(["run", str(f)]) == 0
    assert log == (stage / "launcher.log").read_text()
