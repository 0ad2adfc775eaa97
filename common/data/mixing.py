"""Weighted, deterministic mixing of several document streams.

The default weights are Qwen2.5-Coder's code:text:math = 7:2:1 (Hui et al. 2024,
section 3.1.3). Shares are counted in ``unit`` = "tokens" (the paper's sense;
``length`` gives a document's size, default its character count, pass a token
counter for exact token shares) or "documents".

At every step the stream furthest below its target share is drawn next (a
deficit rule, like stride scheduling): realized shares track the targets to within
one document at every prefix, and the order depends only on the inputs and
``seed`` (which breaks ties and randomizes the starting order).
When a stream runs out: ``stop`` ends the mix (shares stay exact), ``drop`` goes
on with the others (shares drift, reported), ``cycle`` restarts that stream (needs
a re-iterable source: a list or a zero-argument callable).

Usage::

    mixer = Mixer({"code": code_docs, "text": text_docs, "math": math_docs}, weights=DEFAULT_WEIGHTS, seed=0)
    docs = [d for _, d in mixer]
    print(mixer.report())   # realized vs target shares

Not here: per-source loading (``sources.py``), tokenization.
"""
from __future__ import annotations

import random
from typing import Callable, Iterable, Iterator, Literal, Mapping

DEFAULT_WEIGHTS = {"code": 7.0, "text": 2.0, "math": 1.0}


class Mixer:
    """Iterate ``(stream_name, document)`` pairs in weighted, deterministic order."""

    def __init__(self, streams: Mapping[str, Iterable[str] | Callable[[], Iterable[str]]],
                 weights: Mapping[str, float] | None = None, seed: int = 0,
                 unit: Literal["tokens", "documents"] = "tokens", length: Callable[[str], int] = len,
                 on_exhausted: Literal["stop", "drop", "cycle"] = "drop", limit: int | None = None):
        if not streams:
            raise ValueError("Mixer: no streams given")
        weights = dict(weights) if weights is not None else {k: 1.0 for k in streams}
        missing = sorted(set(streams) - set(weights))
        extra = sorted(set(weights) - set(streams))
        if missing or extra:
            raise ValueError(f"Mixer: weights and streams differ (no weight for {missing}, no stream for {extra})")
        if any(w <= 0 for w in weights.values()):
            raise ValueError(f"Mixer: weights must be > 0, got {weights}")
        if unit not in ("tokens", "documents") or on_exhausted not in ("stop", "drop", "cycle"):
            raise ValueError(f"Mixer: bad unit {unit!r} or on_exhausted {on_exhausted!r}")
        total = sum(weights.values())
        self.targets = {k: weights[k] / total for k in streams}
        self._sources = dict(streams)
        self.seed, self.unit, self.length = seed, unit, length
        self.on_exhausted, self.limit = on_exhausted, limit
        self.consumed = {k: 0 for k in streams}
        self.documents = {k: 0 for k in streams}
        self.exhausted: list[str] = []

    def _open(self, name: str) -> Iterator[str]:
        src = self._sources[name]
        return iter(src() if callable(src) else src)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        rng = random.Random(f"mix:{self.seed}")
        names = list(self._sources)
        rng.shuffle(names)
        tie = {k: rng.random() * 1e-9 for k in names}  # seeded tie-break among equal deficits
        its = {k: self._open(k) for k in names}
        live = list(names)
        n = 0
        while live and (self.limit is None or n < self.limit):
            spent = sum(self.consumed.values())
            # deficit = target share of (spent + next) minus what this stream already got
            name = max(live, key=lambda k: self.targets[k] * (spent + 1) - self.consumed[k] + tie[k])
            try:
                doc = next(its[name])
            except StopIteration:
                if self.on_exhausted == "cycle" and (callable(self._sources[name])
                                                      or not isinstance(self._sources[name], Iterator)):
                    its[name] = self._open(name)
                    try:
                        doc = next(its[name])
                    except StopIteration:
                        raise ValueError(f"Mixer: stream {name!r} is empty") from None
                else:
                    self.exhausted.append(name)
                    live.remove(name)
                    if self.on_exhausted == "stop":
                        return
                    continue
            self.consumed[name] += self.length(doc) if self.unit == "tokens" else 1
            self.documents[name] += 1
            n += 1
            yield name, doc

    def report(self) -> dict:
        """Target and realized shares (in ``unit``), document counts, exhausted streams."""
        spent = sum(self.consumed.values()) or 1
        return {"unit": self.unit,
                "target": dict(self.targets),
                "realized": {k: v / spent for k, v in self.consumed.items()},
                "documents": dict(self.documents),
                "exhausted": list(self.exhausted)}


def mix_documents(streams: Mapping[str, Iterable[str]], weights: Mapping[str, float] | None = None,
                  seed: int = 0, **kwargs) -> tuple[list[str], dict]:
    """All mixed documents as a list, with the :meth:`Mixer.report`."""
    m = Mixer(streams, weights, seed, **kwargs)
    docs = [d for _, d in m]
    return docs, m.report()
