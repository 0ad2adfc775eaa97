"""The CPT data path in one call: sources -> mix -> decontaminate -> FIM -> tokenize -> pack.

Order matters: decontamination sees the original text (a FIM rewrite would move
benchmark n-grams apart), FIM applies to code sources only and before
tokenization (its sentinels are special tokens), and packing comes last.

Usage::

    examples, report = build_cpt_examples(cfg.data, tokenizer, seq_len=cfg.seq_len,
                                          fim=cfg.fim, decontam=cfg.decontam, out_dir=out)
    # examples: list[PackedExample] for CausalLMObjective / PackedCollator
    # report: mix shares, decontamination counts, packing efficiency (also out_dir/data_report.json)

A source's domain (code/text/math) comes from ``DataSourceConfig.domain`` or is
inferred (builtin:stdlib_code, repo_level sources and folders of .py files are code,
math_corpus is math, the rest text). Everything is materialized in memory: this is the
reference path, for tests and small corpora. Training (``domainspec cpt``) uses the
streaming prepare step instead (:mod:`~domainspec.common.data.prepare`: the same steps and
seeds, the same sequences, written to memory-mapped shards with bounded memory).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from domainspec.common.data.sources import DataSourceConfig, check_source, load_documents

log = logging.getLogger(__name__)


def source_domain(src: DataSourceConfig) -> str:
    if src.domain:
        return src.domain
    if src.repo_level:
        return "code"
    if src.path in ("builtin:stdlib_code",):
        return "code"
    if src.path == "builtin:math_corpus":
        return "math"
    if src.path == "builtin:stdlib_docs":
        return "text"
    p = Path(src.path)
    if p.is_dir() and any(e in (".py", ".js", ".ts", ".java", ".c", ".cpp", ".go", ".rs") for e in src.extensions):
        return "code"
    return "text"


def build_cpt_examples(sources: Sequence[DataSourceConfig], tokenizer, seq_len: int = 8192, fim=None,
                       decontam=None, seed: int = 0, out_dir: str | Path | None = None,
                       cache_dir: str | Path | None = None, on_exhausted: str = "drop",
                       max_documents: int | None = None):
    """Packed CPT sequences and a report dict (see module docstring)."""
    from domainspec.common.data.fim import apply_fim
    from domainspec.common.data.mixing import Mixer
    from domainspec.common.data.packing import pack_documents, packing_stats
    from domainspec.common.data.tokenization import tokenize_texts

    if not sources:
        raise ValueError("build_cpt_examples: no data sources")
    if any(s.repo_level for s in sources):
        raise ValueError("build_cpt_examples: repo_level sources are built by the prepare step only "
                         "(domainspec cpt prepare)")
    for s in sources:
        check_source(s)  # missing paths fail before anything is read
    labels = [s.label for s in sources]
    if len(set(labels)) != len(labels):
        raise ValueError(f"build_cpt_examples: source labels must be unique, got {labels}; set name: per source")
    streams = {s.label: (lambda s=s: load_documents(s)) for s in sources}
    domains = {s.label: source_domain(s) for s in sources}
    mixer = Mixer(streams, {s.label: s.weight for s in sources}, seed=seed, on_exhausted=on_exhausted,
                  limit=max_documents)
    mixed = list(mixer)
    report: dict = {"mix": mixer.report(), "domains": domains}

    docs = [(f"{name}:{i}", name, text) for i, (name, text) in enumerate(mixed)]
    if decontam is not None and decontam.enabled:
        from domainspec.common.data.decontam import BenchmarkIndex, decontaminate, provided_texts

        index = BenchmarkIndex.from_texts(provided_texts(decontam), decontam.n)  # the benchmarks' own texts
        stats: dict = {}
        dropped = Path(out_dir) / "dropped.jsonl" if out_dir is not None else None
        docs = [(i, n, t) for i, t, n in decontaminate(((i, t, n) for i, n, t in docs), index, dropped, stats)]
        report["decontam"] = stats

    import random

    texts = []
    n_fim = 0
    for doc_id, name, text in docs:
        if fim is not None and fim.rate > 0 and domains[name] == "code":
            new = apply_fim(text, fim, random.Random(f"fim:{seed}:{doc_id}"))
            n_fim += new is not text
            text = new
        texts.append(text)
    report["fim_documents"] = n_fim

    token_lists = tokenize_texts(texts, tokenizer, cache_dir=cache_dir)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("build_cpt_examples: the tokenizer has no eos_token_id to join documents with")
    examples = pack_documents(token_lists, seq_len=seq_len, eos_id=eos, pad_id=tokenizer.pad_token_id)
    report["packing"] = packing_stats(examples)
    log.info("CPT data: %d documents -> %d sequences of %d tokens, packing efficiency %.4f, mix %s",
             len(texts), len(examples), seq_len, report["packing"]["efficiency"],
             {k: round(v, 3) for k, v in report["mix"]["realized"].items()})
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "data_report.json").write_text(json.dumps(report, indent=2))
    return examples, report
