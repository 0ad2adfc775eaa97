"""pipelines.yaml: parse, validate and plan (no work is done here).

File format::

    workdir: runs                      # artifacts go to <workdir>/<pipeline>/<stage>/
    templates:                         # shared stage definitions, used with `extends`
      cpt_base: {type: cpt, config: {...}}
    pipelines:
      coder:
        stages:
          cpt: {extends: cpt_base, config: {data: [...]}}
          sft:
            type: coder_sft
            config: {model: {name_or_path: "${cpt.model}"}}   # output `model` of stage `cpt`
            launcher: {kind: deepspeed, nproc_per_node: 8}    # training and sampling stages

A ``${stage.output}`` reference makes the stage depend on that stage and is
replaced by the output's path; ``needs: [stage]`` adds an ordering-only
dependency. Every error (unknown stage type, unknown key, wrong type, missing
input, cycle) names the file, line and key before anything runs.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from domainspec.common.config import Config, ConfigError, LineIndex, apply_overrides, build_config, load_yaml
from domainspec.common.pipeline.fingerprint import external_inputs, stage_hash
from domainspec.common.pipeline.launchers import LauncherConfig
from domainspec.common.pipeline.stages import STAGE_TYPES, StageType, get_stage_type

REF = re.compile(r"\$\{([A-Za-z_][\w-]*)\.([A-Za-z_]\w*)\}")
STAGE_KEYS = {"type", "extends", "needs", "launcher", "config", "config_from", "description"}
TOP_KEYS = {"workdir", "templates", "pipelines", "version"}


@dataclass
class PlannedStage:
    pipeline: str
    name: str
    type: StageType
    config: Config
    launcher: LauncherConfig
    deps: list[str]
    out_dir: Path
    hash: str = ""
    external_inputs: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.pipeline}/{self.name}"

    def output_path(self, name: str) -> Path:
        return self.out_dir / self.type.outputs[name]


@dataclass
class Plan:
    source: str
    workdir: Path
    pipelines: dict[str, list[PlannedStage]]  # each list in execution order


def _deep_merge(base: Any, over: Any, path: str = "") -> Any:
    """``over`` merged into ``base``: mappings key by key; a mapping of indexes over a list item by item.

    The second form is what ``--set coder.sft.stages.1.train.lr=5e-4`` becomes when the list lives
    in a template or a ``config_from`` recipe rather than in the stage itself.
    """
    def at(k: Any) -> str:
        return f"{path}.{k}" if path else str(k)

    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _deep_merge(base[k], v, at(k)) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(over, dict) and over and all(
            isinstance(k, int) or (isinstance(k, str) and k.isdigit()) for k in over):
        out = list(base)
        for k, v in over.items():
            if int(k) >= len(base):
                raise ConfigError(f"{at(k)}: no item {k} in a list of {len(base)} (indexes start at 0)")
            out[int(k)] = _deep_merge(base[int(k)], v, at(k))
        return out
    return copy.deepcopy(over)


def _expand_overrides(overrides: Iterable[str] | None) -> list[str]:
    """``coder.sft.lr=1`` is short for ``pipelines.coder.stages.sft.config.lr=1``."""
    out = []
    for item in overrides or ():
        key, _, value = item.partition("=")
        parts = key.split(".")
        if parts[0] in TOP_KEYS or len(parts) < 3:
            out.append(item)
            continue
        pipe, stage, rest = parts[0], parts[1], parts[2:]
        prefix = f"pipelines.{pipe}.stages.{stage}."
        if rest[0] not in STAGE_KEYS:
            prefix += "config."
        out.append(prefix + ".".join(rest) + "=" + value)
    return out


def _collect_refs(node: Any, found: list[tuple[str, str]]) -> None:
    if isinstance(node, str):
        found.extend(REF.findall(node))
    elif isinstance(node, dict):
        for v in node.values():
            _collect_refs(v, found)
    elif isinstance(node, list):
        for v in node:
            _collect_refs(v, found)


def _substitute(node: Any, resolve) -> Any:
    if isinstance(node, str):
        return REF.sub(lambda m: resolve(m.group(1), m.group(2)), node)
    if isinstance(node, dict):
        return {k: _substitute(v, resolve) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, resolve) for v in node]
    return node


def load_plan(path: str | Path, overrides: Iterable[str] | None = None, workdir: str | Path | None = None,
              pipelines: Iterable[str] | None = None) -> Plan:
    """Validate the whole file (every pipeline) and return the execution plan of the chosen pipelines."""
    data, lines = load_yaml(path)
    src = str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: expected a mapping with 'pipelines' at the top level")
    apply_overrides(data, _expand_overrides(overrides))
    errors: list[str] = []
    for k in data:
        if k not in TOP_KEYS:
            errors.append(f"{lines.where((k,))}: {k}: unknown top-level key (expected one of {sorted(TOP_KEYS)})")
    pipes = data.get("pipelines")
    if not isinstance(pipes, dict) or not pipes:
        raise ConfigError("\n".join(errors + [f"{lines.where(('pipelines',))}: pipelines: expected a non-empty "
                                              f"mapping of pipeline name -> {{stages: ...}}"]))
    templates = data.get("templates") or {}
    wd = Path(workdir or data.get("workdir") or "runs")
    if not wd.is_absolute():
        wd = (Path.cwd() / wd)
    # pipelines marked `default: false` (e.g. the real-scale examples) run only when named
    wanted = list(pipelines) if pipelines else [n for n, d in pipes.items()
                                               if not (isinstance(d, dict) and d.get("default") is False)]
    for p in wanted:
        if p not in pipes:
            raise ConfigError(f"{src}: no pipeline {p!r}; the file defines: {', '.join(pipes)}")

    plan = Plan(src, wd, {})
    for pname, pdef in pipes.items():
        try:
            stages = _plan_pipeline(pname, pdef, templates, lines, wd, Path(src).resolve().parent)
        except ConfigError as e:
            errors.append(str(e))
            continue
        if pname in wanted:
            plan.pipelines[pname] = stages
    if errors:
        raise ConfigError("\n".join(errors))
    return plan


def _config_from(sdef: dict, sl: LineIndex, dotted: str, base_dir: Path) -> tuple[dict, LineIndex]:
    """Deep-merge the stage's ``config`` over the YAML file named by ``config_from`` (relative to the
    pipeline file), so a recipe file is reused rather than copied; errors point into the right file."""
    ref = sdef.get("config_from")
    if not ref:
        return sdef, sl
    path = Path(ref) if Path(ref).is_absolute() else base_dir / ref
    if not path.is_file():
        raise ConfigError(f"{sl.where(('config_from',))}: {dotted}.config_from: file not found: {path}")
    base, base_lines = load_yaml(path)
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: expected a mapping of config fields")
    merged_lines = LineIndex(base_lines.source, {("config",) + k: v for k, v in base_lines.lines.items()})
    own = {k: v for k, v in sl.lines.items() if k[:1] == ("config",) and len(k) > 1}
    if own:  # keys given in the stage itself point into the pipeline file
        merged_lines = _MixedLines({k: (sl.source, v) for k, v in own.items()}, merged_lines, sl)
    else:
        merged_lines = _MixedLines({}, merged_lines, sl)
    out = dict(sdef)
    out["config"] = _deep_merge(base, sdef.get("config") or {}, f"{dotted}.config")
    return out, merged_lines


class _MixedLines(LineIndex):
    """Line index over two files: the stage's own keys first, then the config_from file, then the stage."""

    def __init__(self, own: dict[tuple, tuple[str, int]], base: LineIndex, stage: LineIndex):
        super().__init__(stage.source, stage.lines)
        self.own, self.base = own, base

    def where(self, path) -> str:
        path = tuple(path)
        p = path
        while p:
            if p in self.own:
                return f"{self.own[p][0]}:{self.own[p][1]}"
            if p in self.base.lines:
                return f"{self.base.source}:{self.base.lines[p]}"
            p = p[:-1]
        return super().where(path)

    def sub(self, prefix) -> "LineIndex":
        prefix = tuple(prefix)
        n = len(prefix)
        own = {k[n:]: v for k, v in self.own.items() if k[:n] == prefix}
        base = LineIndex(self.base.source, {k[n:]: v for k, v in self.base.lines.items() if k[:n] == prefix})
        return _MixedLines(own, base, super().sub(prefix))


def _plan_pipeline(pname: str, pdef: Any, templates: dict, lines: LineIndex, wd: Path,
                   base_dir: Path) -> list[PlannedStage]:
    """One pipeline's stages in execution order, each with its typed config and hash; errors name lines."""
    raw, stage_lines = _resolve_stage_defs(pname, pdef, templates, lines, base_dir)
    types = {sname: get_stage_type(sdef["type"]) for sname, sdef in raw.items()}
    deps = _collect_deps(pname, raw, types, stage_lines)
    order = _toposort(pname, list(raw), deps, stage_lines)
    return _build_stages(pname, order, raw, types, deps, stage_lines, wd)


def _resolve_stage_defs(pname: str, pdef: Any, templates: dict, lines: LineIndex,
                        base_dir: Path) -> tuple[dict[str, dict], dict[str, LineIndex]]:
    """Each stage's definition with its template (``extends``) and ``config_from`` file merged in,
    checked for unknown keys and stage types; with the line index each one's errors point into."""
    base = ("pipelines", pname)
    if not isinstance(pdef, dict) or not isinstance(pdef.get("stages"), dict) or not pdef["stages"]:
        raise ConfigError(f"{lines.where(base)}: pipelines.{pname}: expected 'stages:' mapping stage name -> definition")
    extra = set(pdef) - {"stages", "description", "default"}
    if extra:
        raise ConfigError(f"{lines.where(base + (sorted(extra)[0],))}: pipelines.{pname}.{sorted(extra)[0]}: unknown key")
    errors: list[str] = []
    raw: dict[str, dict] = {}
    stage_lines: dict[str, LineIndex] = {}
    for sname, sdef in pdef["stages"].items():
        spath = base + ("stages", sname)
        where = lines.where(spath)
        dotted = ".".join(map(str, spath))
        if not isinstance(sdef, dict):
            errors.append(f"{where}: {dotted}: expected a mapping with 'type' and 'config'")
            continue
        sl = lines.sub(spath)
        if "extends" in sdef:
            tname = sdef["extends"]
            if tname not in templates:
                errors.append(f"{lines.where(spath + ('extends',))}: {dotted}.extends: no template {tname!r} "
                              f"(templates: {', '.join(templates) or 'none'})")
                continue
            tl = lines.sub(("templates", tname))
            tl.lines.update(sl.lines)  # the stage's own keys win, inherited keys point into the template
            sl = tl
            sdef = _deep_merge({k: v for k, v in templates[tname].items()}, {k: v for k, v in sdef.items() if k != "extends"}, dotted)
        try:
            sdef, sl = _config_from(sdef, sl, dotted, base_dir)
        except ConfigError as e:
            errors.append(str(e))
            continue
        unknown = set(sdef) - STAGE_KEYS
        for k in sorted(unknown):
            errors.append(f"{sl.where((k,))}: {dotted}.{k}: unknown stage key (expected {sorted(STAGE_KEYS)})")
        stype = sdef.get("type")
        if stype not in STAGE_TYPES:
            errors.append(f"{sl.where(('type',))}: {dotted}.type: unknown stage type {stype!r}; "
                          f"known: {', '.join(sorted(STAGE_TYPES))}")
            continue
        raw[sname] = sdef
        stage_lines[sname] = sl
    if errors:
        raise ConfigError("\n".join(errors))
    return raw, stage_lines


def _collect_deps(pname: str, raw: dict[str, dict], types: dict[str, StageType],
                  stage_lines: dict[str, LineIndex]) -> dict[str, list[str]]:
    """Each stage's upstream stages: those its ``${stage.output}`` references name, then its ``needs:``."""
    errors: list[str] = []
    deps: dict[str, list[str]] = {}
    for sname, sdef in raw.items():
        dotted = f"pipelines.{pname}.stages.{sname}"
        refs: list[tuple[str, str]] = []
        _collect_refs(sdef.get("config"), refs)
        d: list[str] = []
        for up, out in refs:
            if up not in raw:
                errors.append(f"{stage_lines[sname].where(('config',))}: {dotted}.config: reference ${{{up}.{out}}}: "
                              f"no stage {up!r} in pipeline {pname!r}")
            elif out not in types[up].outputs:
                errors.append(f"{stage_lines[sname].where(('config',))}: {dotted}.config: reference ${{{up}.{out}}}: "
                              f"stage {up!r} ({raw[up]['type']}) has outputs {sorted(types[up].outputs)}")
            elif up not in d:
                d.append(up)
        needs = sdef.get("needs") or []
        if not isinstance(needs, list):
            errors.append(f"{stage_lines[sname].where(('needs',))}: {dotted}.needs: expected a list of stage names")
            needs = []
        for up in needs:
            if up not in raw:
                errors.append(f"{stage_lines[sname].where(('needs',))}: {dotted}.needs: no stage {up!r} in pipeline {pname!r}")
            elif up not in d:
                d.append(up)
        deps[sname] = d
    if errors:
        raise ConfigError("\n".join(errors))
    return deps


def _build_stages(pname: str, order: list[str], raw: dict[str, dict], types: dict[str, StageType],
                  deps: dict[str, list[str]], stage_lines: dict[str, LineIndex], wd: Path) -> list[PlannedStage]:
    """In ``order``: substitute upstream output paths, build the typed config and launcher, hash the stage."""
    errors: list[str] = []
    planned: dict[str, PlannedStage] = {}
    for sname in order:
        if any(u not in planned for u in deps[sname]):
            continue  # an upstream stage is invalid; its error is already reported
        sdef, st = raw[sname], types[sname]
        prefix = ("pipelines", pname, "stages", sname)

        def resolve(up: str, name: str) -> str:
            return str(planned[up].output_path(name))

        cfg_raw = _substitute(sdef.get("config") or {}, resolve)
        try:
            cfg = build_config(st.config_cls, cfg_raw, stage_lines[sname].sub(("config",)), prefix=prefix + ("config",))
            launcher = build_config(LauncherConfig, sdef.get("launcher") or {}, stage_lines[sname].sub(("launcher",)),
                                    prefix=prefix + ("launcher",))
        except ConfigError as e:
            errors.append(str(e))
            continue
        if launcher.kind != "local" and not st.distributed:
            errors.append(f"{stage_lines[sname].where(('launcher',))}: pipelines.{pname}.stages.{sname}.launcher: "
                          f"stage type {st.name!r} is not a training stage or a sampling stage: it runs in the runner's "
                          f"process and takes no launcher (stage types that do: {', '.join(_distributed_types())})")
            continue
        ext = external_inputs(cfg.to_dict(), wd)
        ps = PlannedStage(pname, sname, st, cfg, launcher, deps[sname], wd / pname / sname, external_inputs=ext)
        ps.hash = stage_hash(st.name, cfg.to_dict(), ext, {u: planned[u].hash for u in deps[sname]})
        planned[sname] = ps
    if errors:
        raise ConfigError("\n".join(errors))
    return list(planned.values())


def _distributed_types() -> list[str]:
    """The registered stage types that take a launcher (for the error message; imports every stage type)."""
    return sorted(n for n in STAGE_TYPES if get_stage_type(n).distributed)


def _toposort(pname: str, names: list[str], deps: dict[str, list[str]], stage_lines: dict[str, LineIndex]) -> list[str]:
    """Kahn's algorithm; ties keep file order. A cycle is reported with its members and lines."""
    indeg = {n: len(deps[n]) for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for u in deps[n]:
            users[u].append(n)
    ready = [n for n in names if indeg[n] == 0]
    order: list[str] = []
    while ready:
        n = ready.pop(0)
        order.append(n)
        for m in users[n]:
            indeg[m] -= 1
            if indeg[m] == 0:
                ready.append(m)
                ready.sort(key=names.index)
    if len(order) != len(names):
        cyc = [n for n in names if n not in order]
        where = stage_lines[cyc[0]].where(())
        raise ConfigError(f"{where}: pipelines.{pname}: dependency cycle among stages "
                          + ", ".join(f"{n} (needs {', '.join(deps[n])})" for n in cyc))
    return order
