"""The generic `sft` stage: conversation files -> rendered, masked, packed -> the one training loop."""
import json

from pipeline_helpers import one_stage_pipeline

from domainspec.common.cli import main


def test_sft_stage_trains_on_conversations(tmp_path):
    data = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"add {i} and {i + 1}"},
                          {"role": "assistant", "content": f"{2 * i + 1}"}]} for i in range(24)]
    rows.append({"instruction": "say hi", "input": "", "output": "hi"})
    rows.append({"prompt": "long " * 400, "completion": "x"})  # longer than seq_len: dropped and counted
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    f, out = one_stage_pipeline(tmp_path, "sft", {
        "model": {"name_or_path": "tiny", "tiny": {"hidden_size": 64, "num_hidden_layers": 1, "intermediate_size": 128}},
        "data": [{"path": str(data)}],
        "seq_len": 128,
        "train": {"lr": 1.0e-3, "max_steps": 3, "global_batch_size": 2, "micro_batch_size": 2, "log_every": 1,
                  "progress": False}})
    assert main(["run", str(f)]) == 0
    report = json.loads((out / "data_report.json").read_text())
    assert report["conversations"] == 26 and report["trained"] == 25 and report["dropped_longer"] == 1
    assert (out / "final" / "config.json").exists()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
