"""Typed stage configs: one pydantic model per stage, validated once.

Precedence (STYLE.md #4): class defaults < YAML file < ``--set key=value``
overrides. Unknown keys and wrong types raise :class:`ConfigError` naming the
file, line and dotted YAML path of each bad field before any work starts. The
resolved config is written next to every artifact (:meth:`Config.save_resolved`).

Usage::

    cfg = load_config(CPTConfig, "cpt.yaml", overrides=["lr=1e-4"])
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from domainspec.common.artifacts import file_sha256  # noqa: F401  (its home is artifacts; plan.py imports it from here)

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config that cannot be used; the message names file, line and key."""


class Config(BaseModel):
    """Base for every stage config: unknown keys are errors, assignment is validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """sha256 of the canonical JSON form; used by caches and the pipeline's skip logic."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def save_resolved(self, out_dir: str | Path, name: str = "resolved_config.yaml") -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / name
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


# ---------------------------------------------------------------- YAML with lines


class LineIndex:
    """Maps dotted key paths of a YAML document to (file, line) for error messages."""

    def __init__(self, source: str = "<config>", lines: Mapping[tuple, int] | None = None):
        self.source = source
        self.lines: dict[tuple, int] = dict(lines or {})

    def where(self, path: Iterable) -> str:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]  # fall back to the nearest enclosing key
        line = self.lines.get(path)
        return f"{self.source}:{line}" if line else self.source

    def sub(self, prefix: Iterable) -> "LineIndex":
        prefix = tuple(prefix)
        n = len(prefix)
        # the prefix key's own line becomes the sub-index's root line
        return LineIndex(self.source, {k[n:]: v for k, v in self.lines.items() if k[:n] == prefix})


def _index_node(node: yaml.Node, path: tuple, out: dict[tuple, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _index_node(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _index_node(item, path + (i,), out)


def load_yaml(path: str | Path) -> tuple[Any, LineIndex]:
    """Parse a YAML file; return the data and a :class:`LineIndex` of its keys."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    text = p.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark else str(p)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', e)}") from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _index_node(node, (), lines)
    return data if data is not None else {}, LineIndex(str(p), lines)


# ---------------------------------------------------------------- overrides


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"stages.0.lr=1e-4"`` -> (["stages", "0", "lr"], 1e-4); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set lr=1e-4)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str] | None) -> dict:
    """Apply ``key.sub=value`` overrides to a nested dict/list tree (in place) and return it."""
    for item in overrides or ():
        keys, value = parse_override(item)
        node: Any = data
        for i, k in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, list):
                try:
                    idx = int(k)
                    node[idx]
                except (ValueError, IndexError):
                    raise ConfigError(f"--set {item!r}: {'.'.join(keys[:i + 1])} is not a valid list index") from None
                if last:
                    node[idx] = value
                else:
                    node = node[idx]
            elif isinstance(node, dict):
                if last:
                    node[k] = value
                else:
                    node = node.setdefault(k, {})
            else:
                raise ConfigError(f"--set {item!r}: {'.'.join(keys[:i])} is not a mapping")
    return data


# ---------------------------------------------------------------- validation


def format_validation_error(err: ValidationError, lines: LineIndex, prefix: Iterable = ()) -> str:
    prefix = tuple(prefix)
    msgs = []
    for e in err.errors():
        rel = tuple(e["loc"])  # relative to `lines`; `prefix` only names the full path
        loc = prefix + rel
        dotted = ".".join(str(x) for x in loc) or "<root>"
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = e["msg"]
            if "input" in e and kind not in ("missing",):
                shown = repr(e["input"])
                msg += f" (got {shown[:80]})"
        msgs.append(f"{lines.where(rel)}: {dotted}: {msg}")
    return "\n".join(msgs)


def build_config(cls: type[C], data: Any, lines: LineIndex | None = None, prefix: Iterable = ()) -> C:
    """Validate ``data`` into ``cls``; errors name file, line and dotted path."""
    lines = lines or LineIndex()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{lines.where(())}: {'.'.join(map(str, prefix)) or '<root>'}: "
                          f"expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, lines, prefix)) from None


def load_config(cls: type[C], path: str | Path | None = None, overrides: Iterable[str] | None = None,
                section: str | None = None) -> C:
    """Class defaults < YAML file (optionally one top-level ``section``) < overrides."""
    data: Any = {}
    lines = LineIndex("<defaults>")
    if path is not None:
        data, lines = load_yaml(path)
        if section is not None:
            if not isinstance(data, dict) or section not in data:
                raise ConfigError(f"{path}: no top-level section {section!r}")
            data, lines = data[section], lines.sub((section,))
    if not isinstance(data, dict):
        raise ConfigError(f"{lines.source}: expected a mapping at the top level, got {type(data).__name__}")
    apply_overrides(data, overrides)
    return build_config(cls, data, lines)
