"""The one skip/resume scheme: content-hash done markers and running markers in a job's folder.

A finished job (a pipeline stage, a Coder SFT stage or its scoring, a math-loop round or step)
leaves a done marker holding the content hash of its inputs; the next run skips the job while
that hash still matches (STYLE.md #8: hashes, never "a file exists"). A started job leaves a
running marker; an interrupted job may resume from its own partial artifacts only when the
running marker's hash matches. Several jobs may share a folder, each under its own ``step`` name.
Writes are atomic (``artifacts.write_json``); marking a job running clears its done marker and
marking it done clears its running marker, so a folder never claims both.

Usage::

    d = is_done(out, h)                  # Decision(Action.SKIP, Reason.UP_TO_DATE, marker) or a RUN
    if d.action is Action.SKIP: return d.marker.result
    resume = may_resume(out, h)          # an interrupted run of the same inputs left partial work
    mark_running(out, h)
    write_done(out, h, result={"loss": 1.2}, elapsed_s=3.4)

Does not do row-level resume of a samples file (``eval/generate.py`` keys rows on their own hash).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from domainspec.common.artifacts import DataFileError, read_json, write_json

_FIELDS = ("hash", "at", "elapsed_s", "result")


class Action(StrEnum):
    RUN = "run"
    SKIP = "skip"


class Reason(StrEnum):
    UP_TO_DATE = "up to date"
    NOT_DONE = "not done yet"
    CHANGED = "config or inputs changed"
    UNREADABLE = "marker unreadable"


@dataclass(frozen=True)
class Marker:
    """A marker as read back: the inputs' hash, when it was written, and what the writer stored."""

    hash: str
    at: float  # time.time() when written (finished for done markers, started for running markers)
    elapsed_s: float | None = None
    result: Any = None  # what the job hands back when it is skipped
    info: dict[str, Any] = field(default_factory=dict)  # other facts stored beside (type, launcher, ...)

    def to_dict(self) -> dict[str, Any]:
        return {**self.info, "hash": self.hash, "at": self.at, "elapsed_s": self.elapsed_s, "result": self.result}


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: Reason
    marker: Marker | None = None  # the done marker found, when there is one


def _path(folder: str | Path, kind: str, step: str | None) -> Path:
    if step is not None and (not step or "/" in step or step.startswith(".")):
        raise ValueError(f"marker step {step!r}: expected a plain name such as 'samples'")
    return Path(folder) / (f".{kind}.json" if step is None else f".{kind}.{step}.json")


def _read(path: Path) -> Marker | None:
    if not path.is_file():
        return None
    obj = read_json(path)  # DataFileError names the file
    if not isinstance(obj, dict) or not isinstance(obj.get("hash"), str):
        raise DataFileError(f"{path}: not a marker (expected a JSON object with a string 'hash')")
    return Marker(obj["hash"], float(obj.get("at") or 0.0), obj.get("elapsed_s"), obj.get("result"),
                  {k: v for k, v in obj.items() if k not in _FIELDS})


def read_done(folder: str | Path, step: str | None = None) -> Marker | None:
    """The done marker of ``step`` in ``folder``; None when absent. An unreadable one raises DataFileError."""
    return _read(_path(folder, "done", step))


def read_running(folder: str | Path, step: str | None = None) -> Marker | None:
    """The running marker of ``step`` in ``folder``; None when absent."""
    return _read(_path(folder, "running", step))


def is_done(folder: str | Path, hash: str, step: str | None = None) -> Decision:
    """SKIP when a done marker with ``hash`` is there; else RUN, saying why."""
    try:
        marker = read_done(folder, step)
    except DataFileError:
        return Decision(Action.RUN, Reason.UNREADABLE)  # re-running is the safe answer to a damaged marker
    if marker is None:
        return Decision(Action.RUN, Reason.NOT_DONE)
    if marker.hash != hash:
        return Decision(Action.RUN, Reason.CHANGED, marker)
    return Decision(Action.SKIP, Reason.UP_TO_DATE, marker)


def may_resume(folder: str | Path, hash: str, step: str | None = None) -> bool:
    """Whether an interrupted run with the same ``hash`` left ``folder`` (its partial work may be reused)."""
    try:
        marker = read_running(folder, step)
    except DataFileError:
        return False
    return marker is not None and marker.hash == hash


def mark_running(folder: str | Path, hash: str, step: str | None = None) -> None:
    """Record that the job with ``hash`` has started in ``folder`` (and is not done)."""
    _path(folder, "done", step).unlink(missing_ok=True)
    write_json(Marker(hash, time.time()).to_dict(), _path(folder, "running", step), indent=1)


def write_done(folder: str | Path, hash: str, result: Any = None, step: str | None = None,
               elapsed_s: float | None = None, **info: Any) -> Marker:
    """Record that the job with ``hash`` finished, with what a later skip hands back; clears the running marker."""
    clash = set(info) & set(_FIELDS)
    if clash:
        raise ValueError(f"write_done: {sorted(clash)} are marker fields, not extra info")
    marker = Marker(hash, time.time(), elapsed_s, result, dict(info))
    write_json(marker.to_dict(), _path(folder, "done", step), indent=1)
    _path(folder, "running", step).unlink(missing_ok=True)
    return marker
