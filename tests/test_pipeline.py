"""The pipeline runner: validation with lines, skip/re-run decisions, failures, launchers, report."""
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from domainspec.common.pipeline import stages as stages_mod
from domainspec.common.cli import main
from domainspec.common.config import ConfigError
from domainspec.common.pipeline.launchers import LauncherConfig, launch_command, slurm_script
from domainspec.common.pipeline.markers import Action, is_done, mark_running
from domainspec.common.pipeline.plan import load_plan
from domainspec.common.pipeline.runner import decide


@pytest.fixture(autouse=True)
def fake_types(monkeypatch):
    monkeypatch.setitem(stages_mod.STAGE_TYPES, "echo", "fake_stages:ECHO")
    monkeypatch.setitem(stages_mod.STAGE_TYPES, "local_echo", "fake_stages:LOCAL_ONLY")


PIPE = """\
workdir: {wd}
templates:
  base: &base
    type: echo
    config: {{value: 1}}
pipelines:
  p:
    stages:
      a: {{extends: base, config: {{value: 2, source: {src}}}}}
      b: {{type: echo, config: {{value: 3, source: "${{a.artifact}}"}}}}
      c: {{type: echo, config: {{value: 4, source: "${{b.artifact}}"}}}}
  big:
    default: false
    stages:
      x: {{type: echo}}
"""


def write(tmp_path, text, name="pipe.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture
def pipe(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("in;")
    return write(tmp_path, PIPE.format(wd=tmp_path / "wd", src=src)), tmp_path / "wd"


def runs(wd):
    p = wd / "runs.log"
    return p.read_text().split() if p.exists() else []


def test_run_skip_and_rerun_downstream_only(pipe, tmp_path):
    f, wd = pipe
    assert main(["run", str(f)]) == 0
    assert (wd / "p" / "c" / "artifact.txt").read_text() == "in;a=2;b=3;c=4;"
    assert [r for r in runs(wd) if "/" in r] == ["p/a", "p/b", "p/c"]
    # second run: every stage skipped
    assert main(["run", str(f)]) == 0
    assert len([r for r in runs(wd) if "/" in r]) == 3
    # change b: b and c re-run, a does not
    assert main(["run", str(f), "--set", "p.b.value=30"]) == 0
    assert [r for r in runs(wd) if "/" in r][3:] == ["p/b", "p/c"]
    assert (wd / "p" / "c" / "artifact.txt").read_text() == "in;a=2;b=30;c=4;"
    report = (wd / "report.md").read_text()
    assert "| a | echo | stale |" in report or "| a | echo | done |" in report
    assert "rounds" in report and "0.75" in report
    assert json.loads((wd / "report.json").read_text())["pipelines"]["p"]["c"]["metrics"]["value"] == 4


def test_external_input_content_change_reruns(pipe, tmp_path):
    f, wd = pipe
    plan = load_plan(f)
    assert main(["run", str(f)]) == 0
    (tmp_path / "input.txt").write_text("changed;")
    d = decide(load_plan(f))["p"]
    assert [x.action for x in d] == [Action.RUN, Action.RUN, Action.RUN]
    assert d[0].reason == "config or inputs changed"
    assert load_plan(f).pipelines["p"][0].hash != plan.pipelines["p"][0].hash


def test_dry_run_only_from(pipe, capsys):
    f, wd = pipe
    assert main(["run", str(f), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "run   a (echo)" in out and "not done yet" in out
    assert "pipeline big" not in out  # default: false runs only when named
    assert main(["run", str(f), "--dry-run", "--pipeline", "big"]) == 0
    assert "run   x (echo)" in capsys.readouterr().out
    assert not wd.joinpath("p").exists()
    assert main(["run", str(f), "--only", "a"]) == 0
    assert [r for r in runs(wd) if "/" in r] == ["p/a"]
    assert main(["run", str(f)]) == 0
    assert main(["run", str(f), "--from", "b"]) == 0
    assert [r for r in runs(wd) if "/" in r][-2:] == ["p/b", "p/c"]


def test_failure_keeps_earlier_artifacts(pipe, tmp_path):
    f, wd = pipe
    assert main(["run", str(f), "--set", "p.b.fail=true"]) == 1
    assert is_done(wd / "p" / "a", load_plan(f).pipelines["p"][0].hash).action is Action.SKIP
    assert "planned failure" in (wd / "p" / "b" / "error.log").read_text()
    assert not (wd / "p" / "c").exists()
    # a changed config (fail=false) starts b from an empty folder
    assert main(["run", str(f)]) == 0
    assert (wd / "runs.log").read_text().splitlines()[-2] == "p/b resume=False"


def test_report_statuses_and_a_torn_metrics_tail(pipe):
    from domainspec.common.pipeline.report import Status, write_report
    f, wd = pipe
    assert main(["run", str(f), "--set", "p.b.fail=true"]) == 1
    (wd / "p" / "a" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    write_report(load_plan(f))
    report = json.loads((wd / "report.json").read_text())["pipelines"]["p"]
    assert [report[n]["status"] for n in "abc"] == [Status.DONE, Status.FAILED, Status.NOT_RUN]
    assert report["a"]["metrics"] == {"value": 2, "rounds": [{"round": 0, "acc": 0.5}, {"round": 1, "acc": 0.75}]}
    assert any(p.endswith("p_a.png") for p in report["a"]["plots"])  # the two whole rows were plotted
    md = (wd / "report.md").read_text()
    assert "| a | echo | done |" in md and "| b | echo | failed |" in md and "- value: 2" in md
    write_report(load_plan(f, overrides=["p.a.value=7"]))
    assert json.loads((wd / "report.json").read_text())["pipelines"]["p"]["a"]["status"] == Status.STALE


def test_interrupted_stage_resumes_only_with_same_hash(pipe):
    f, wd = pipe
    plan = load_plan(f)
    b = plan.pipelines["p"][1]
    b.out_dir.mkdir(parents=True)
    (b.out_dir / "checkpoint").write_text("partial")
    mark_running(b.out_dir, b.hash)  # as left by a killed run
    assert main(["run", str(f), "--only", "a"]) == 0
    assert main(["run", str(f), "--only", "b"]) == 0
    assert runs(wd)[-2:] == ["p/b", "resume=True"] and (b.out_dir / "checkpoint").exists()
    mark_running(b.out_dir, "other")  # a killed run of another config (also clears the done marker)
    assert main(["run", str(f), "--only", "b"]) == 0
    assert runs(wd)[-1] == "resume=False" and not (b.out_dir / "checkpoint").exists()


@pytest.mark.parametrize("body,needle", [
    ("pipelines:\n  p:\n    stages:\n      a: {type: nope}\n", "pipe.yaml:4: pipelines.p.stages.a.type: unknown stage type 'nope'"),
    ("pipelines:\n  p:\n    stages:\n      a:\n        type: echo\n        config:\n          value: abc\n",
     "pipe.yaml:7: pipelines.p.stages.a.config.value: Input should be a valid integer"),
    ("pipelines:\n  p:\n    stages:\n      a:\n        type: echo\n        config:\n          valu: 1\n",
     "pipe.yaml:7: pipelines.p.stages.a.config.valu: unknown key"),
    ("pipelines:\n  p:\n    stages:\n      a: {type: echo, needs: [b]}\n      b: {type: echo, needs: [a]}\n",
     "dependency cycle among stages a (needs b), b (needs a)"),
    ("pipelines:\n  p:\n    stages:\n      a:\n        type: echo\n        config: {source: '${zz.artifact}'}\n",
     "pipe.yaml:6: pipelines.p.stages.a.config: reference ${zz.artifact}: no stage 'zz'"),
    ("pipelines:\n  p:\n    stages:\n      a: {type: echo}\n      b: {type: echo, config: {source: '${a.model}'}}\n",
     "stage 'a' (echo) has outputs ['artifact']"),
    ("pipelines:\n  p:\n    stages:\n      a:\n        type: local_echo\n        launcher: {kind: deepspeed}\n",
     "pipe.yaml:6: pipelines.p.stages.a.launcher: stage type 'local_echo' is not a training stage"),
    ("pipelines:\n  p:\n    stages:\n      a: {type: echo, extends: missing}\n", "no template 'missing'"),
    ("pipelines:\n  p:\n    stages:\n      a: {type: echo}\nbogus: 1\n", "pipe.yaml:5: bogus: unknown top-level key"),
])
def test_bad_pipeline_files(tmp_path, body, needle):
    f = write(tmp_path, body)
    with pytest.raises(ConfigError) as e:
        load_plan(f)
    assert needle in str(e.value)
    # the CLI prints the same message and runs nothing
    assert main(["run", str(f)]) == 2


def test_slurm_script_two_nodes_eight_gpus(tmp_path):
    cfg = LauncherConfig(kind="slurm", nnodes=2, nproc_per_node=8, partition="gpu", time="12:00:00",
                         setup=["source ~/venv/bin/activate"])
    script = slurm_script(cfg, tmp_path / "stage_spec.json", "ds-coder-cpt", tmp_path)
    path = tmp_path / "job.sbatch"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    for needle in ["#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                   "#SBATCH --partition=gpu", "#SBATCH --time=12:00:00", "source ~/venv/bin/activate",
                   'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1',
                   '--nnodes "$SLURM_NNODES" --nproc_per_node 8', "--rdzv_backend c10d",
                   '--rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT"', "srun --kill-on-bad-exit=1",
                   f"-m domainspec.common.pipeline.stage_exec --spec {tmp_path / 'stage_spec.json'}"]:
        assert needle in script, needle


def test_launch_commands(tmp_path):
    ds = launch_command(LauncherConfig(kind="deepspeed", nproc_per_node=2, cpu=True), Path("s.json"))
    assert ds[:1] == ["deepspeed"] and ds[ds.index("--num_gpus") + 1] == "2" and ds[-4:] == ["--module", "domainspec.common.pipeline.stage_exec", "--spec", "s.json"]
    tr = launch_command(LauncherConfig(kind="torchrun", nproc_per_node=8, nnodes=2, master_addr="n1"), Path("s.json"))
    assert "--rdzv_endpoint" in tr and "n1:29500" in tr and "--nnodes" in tr
    with pytest.raises(Exception, match="hostfile"):
        LauncherConfig(kind="deepspeed", nnodes=2)


def test_every_registered_stage_type_resolves():
    """A broken registration raises instead of silently disappearing."""
    from domainspec.common.pipeline.stages import STAGE_TYPES, get_stage_type
    for name in STAGE_TYPES:
        if name in ("echo", "local_echo"):
            continue
        st = get_stage_type(name)
        assert st.name == name and st.outputs
    with pytest.raises(KeyError, match="unknown stage type"):
        get_stage_type("nope")


def test_shipped_pipelines_validate(capsys):
    """pipelines.yaml (defaults and the real-scale examples) validates and plans anywhere."""
    root = Path(__file__).resolve().parents[1]
    assert main(["run", str(root / "pipelines.yaml"), "--dry-run", "--workdir", "/nonexistent/wd"]) == 0
    out = capsys.readouterr().out
    assert "pipeline coder:" in out and "pipeline math:" in out and "coder-7b" not in out
    assert main(["run", str(root / "pipelines.yaml"), "--dry-run", "--workdir", "/nonexistent/wd",
                 "--pipeline", "coder-7b", "--pipeline", "math-7b"]) == 0
    out = capsys.readouterr().out
    assert "run   cpt (cpt) [slurm x16]" in out and "pipeline math-7b:" in out


def test_config_from_reuses_a_recipe_file(tmp_path):
    (tmp_path / "recipe.yaml").write_text("value: 5\nsource: null\n")
    f = write(tmp_path, f"""\
workdir: {tmp_path / 'wd'}
pipelines:
  p:
    stages:
      a: {{type: echo, config_from: recipe.yaml}}
      b:
        type: echo
        config_from: recipe.yaml
        config: {{value: 6}}
""")
    plan = load_plan(f)
    a, b = plan.pipelines["p"]
    assert a.config.value == 5 and b.config.value == 6
    (tmp_path / "recipe.yaml").write_text("value: 5\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"recipe.yaml:2: pipelines.p.stages.a.config.bogus: unknown key"):
        load_plan(f)
    (tmp_path / "recipe.yaml").write_text("value: 5\n")
    f2 = write(tmp_path, f.read_text().replace("config: {value: 6}", "config:\n          value: x"), "p2.yaml")
    with pytest.raises(ConfigError, match=r"p2.yaml:10: pipelines.p.stages.b.config.value: Input should be"):
        load_plan(f2)
    f3 = write(tmp_path, f.read_text().replace("a: {type: echo, config_from: recipe.yaml}",
                                               "a: {type: echo, config_from: missing.yaml}"), "p3.yaml")
    with pytest.raises(ConfigError, match="config_from: file not found"):
        load_plan(f3)


def test_set_indexes_a_list_that_lives_in_a_config_from_recipe():
    """The README's example: --set coder.sft.stages.1.train.lr=5e-4, where `stages` comes from coder/default_sft.yaml."""
    root = Path(__file__).resolve().parents[1]
    base = {s.name: s for s in load_plan(root / "pipelines.yaml").pipelines["coder"]}["sft"].config
    plan = load_plan(root / "pipelines.yaml", overrides=["coder.sft.stages.1.train.lr=5e-4"])
    sft = {s.name: s for s in plan.pipelines["coder"]}["sft"].config
    assert sft.stages[1].train.lr == 5e-4 and base.stages[1].train.lr != 5e-4
    assert sft.stages[0] == base.stages[0] and len(sft.stages) == len(base.stages)
    with pytest.raises(ConfigError, match=r"pipelines.coder.stages.sft.config.stages.7: no item 7 in a list of 2"):
        load_plan(root / "pipelines.yaml", overrides=["coder.sft.stages.7.train.lr=5e-4"])


def test_report_plots_accuracy_per_round(tmp_path):
    from domainspec.common.pipeline.report import _round_tables, plot_rounds
    from domainspec.common.pipeline.stages import StageResult
    table = [{"round": 0, "set": "heldout", "mode": "cot", "pass@1": 0.3, "rm@k": None},
             {"round": 1, "set": "heldout", "mode": "cot", "pass@1": 0.42, "rm@k": 0.38, "rm_pairwise_accuracy": 0.65}]
    result = StageResult.of({"policy": "x", "table": table, "other": [{"a": 1}]})
    assert _round_tables(result) == [("table", table)]
    png = plot_rounds(table, tmp_path / "rounds.png")
    assert png == tmp_path / "rounds.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_rounds([{"round": 0, "acc": 0.5}], tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
