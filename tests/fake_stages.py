"""Small stage types for runner tests: they record each run so tests can see what ran."""
import json
from pathlib import Path

from pydantic import Field

from domainspec.common.config import Config
from domainspec.common.pipeline.stages import StageType


class EchoConfig(Config):
    value: int = Field(1, description="a number the stage writes")
    source: str | None = Field(None, description="a file or upstream artifact to read")
    fail: bool = Field(False, description="raise instead of finishing")


def run_echo(cfg: EchoConfig, ctx):
    text = Path(cfg.source).read_text() if cfg.source else ""
    if cfg.fail:
        raise RuntimeError("planned failure")
    (ctx.out_dir / "artifact.txt").write_text(f"{text}{ctx.stage}={cfg.value};")
    log = Path(ctx.out_dir).parents[1] / "runs.log"
    with open(log, "a") as f:
        f.write(f"{ctx.pipeline}/{ctx.stage} resume={ctx.resume}\n")
    return {"value": cfg.value, "rounds": [{"round": 0, "acc": 0.5}, {"round": 1, "acc": 0.75}]}


ECHO = StageType("echo", EchoConfig, run_echo, outputs={"artifact": "artifact.txt"}, distributed=True)
LOCAL_ONLY = StageType("local_echo", EchoConfig, run_echo, outputs={"artifact": "artifact.txt"}, distributed=False)
