"""Prepared CPT shards: the same sequences as the in-memory path, reuse by content key, the manifest,
document isolation on shard rows, and bad input (unreadable file, foreign shard, edited manifest)."""
from __future__ import annotations

import gzip
import json
import shutil

import pytest

torch = pytest.importorskip("torch")

from data_helpers import small_tokenizer, tiny_qwen2  # noqa: E402
from domainspec.common.data.decontam import DecontamConfig  # noqa: E402
from domainspec.common.data.fim import FIMConfig  # noqa: E402
from domainspec.common.data.packing import PackedCollator, StreamPacker, pack_documents  # noqa: E402
from domainspec.common.data.prepare import PrepareConfig, prepare, read_manifest  # noqa: E402
from domainspec.common.data.shards import ShardDataset, ShardError  # noqa: E402
from domainspec.common.data.sources import DataError, DataSourceConfig as S  # noqa: E402
from domainspec.common.recipes.cpt_data import build_cpt_examples  # noqa: E402

MATH = [S(path="builtin:math_corpus", limit=60)]


def _prep(tmp_path, sources=MATH, tok=None, seq_len=64, workers=0, **kw):
    cfg = PrepareConfig(workers=workers, batch_documents=kw.pop("batch_documents", 16),
                        shard_tokens=kw.pop("shard_tokens", 2**27))
    return prepare(sources, tok or small_tokenizer(), cfg, tmp_path / "data", seq_len,
                   decontam=kw.pop("decontam", DecontamConfig(enabled=False)), **kw)


def test_stream_packer_matches_pack_documents():
    g = torch.Generator().manual_seed(3)
    docs = [torch.randint(1, 50, (int(n),), generator=g).tolist() for n in torch.randint(0, 70, (40,), generator=g)]
    ref = pack_documents(docs, seq_len=32, eos_id=0, pad_id=99)
    packer, got = StreamPacker(32, eos_id=0, pad_id=99), []
    for d in docs:
        got += [(r.tolist(), lens, 0) for r, lens in packer.add(d)]
    last = packer.finish()
    got.append((last[0].tolist(), last[1], last[2]))
    assert [(e.input_ids, e.seq_lens, e.num_pad) for e in ref] == got
    assert any(len(lens) > 2 for _, lens, _ in got) and got[-1][2] > 0  # several documents per row; padded end


def test_default_corpus_shards_equal_the_in_memory_path(tmp_path):
    """pipelines.yaml's CPT template (code:text:math 7:2:1, seq_len 512, 600 documents, FIM psm 0.5,
    decontamination on): every sequence, label, position and boundary is the same, with 2 workers and
    shards small enough that the rows span several files. For speed: decontamination against the four
    scored benchmarks (the full default index takes ~5 s to build, twice), and each builtin source capped
    above what the mix draws from it (asserted: no source runs out), so the documents are the default's."""
    from domainspec.common.recipes.cpt import CPTConfig
    base = CPTConfig(seq_len=512, max_documents=600, fim=FIMConfig(rate=0.5, mode="psm"),
                     decontam=DecontamConfig(benchmarks=["humaneval", "mbpp", "gsm8k", "math"]))
    cfg = base.model_copy(update={"data": [s.model_copy(update={"limit": 200}) if s.path.startswith("builtin:stdlib")
                                           else s for s in base.data]})
    tok = small_tokenizer()
    ref, rep = build_cpt_examples(cfg.data, tok, seq_len=cfg.seq_len, fim=cfg.fim, decontam=cfg.decontam,
                                  seed=cfg.train.seed, max_documents=cfg.max_documents)
    folder, man = prepare(cfg.data, tok, PrepareConfig(workers=2, shard_tokens=512 * 300), tmp_path, cfg.seq_len,
                          fim=cfg.fim, decontam=cfg.decontam, seed=cfg.train.seed, max_documents=cfg.max_documents)
    ds = ShardDataset(folder)
    assert len(man["shards"]) == 4 and len(ds) == len(ref) > 900
    for i, e in enumerate(ref):
        assert ds[i].to_dict() == e.to_dict(), f"sequence {i} differs"
    assert man["fim_documents"] == rep["fim_documents"] > 0
    assert man["decontam"] == rep["decontam"]
    assert man["packing_efficiency"] == rep["packing"]["efficiency"]
    assert man["segments"] == rep["packing"]["segments"]
    assert {k: v["documents"] for k, v in man["sources"].items()} == rep["mix"]["documents"]
    assert rep["mix"]["exhausted"] == [] and rep["mix"]["documents"]["stdlib_code"] < 200 > \
        rep["mix"]["documents"]["stdlib_docs"]


def test_shard_rows_keep_documents_isolated(tmp_path):
    """The collator's block-causal mask on shard rows: a packed row's logits equal each document alone."""
    tok = small_tokenizer()
    folder, _ = _prep(tmp_path, seq_len=256)
    ds = ShardDataset(folder)
    model = tiny_qwen2("sdpa", vocab_size=len(tok))
    rows = [ds[0], ds[1]]
    assert all(len(r.seq_lens) > 2 for r in rows)
    batch = PackedCollator("sdpa")(rows)
    with torch.no_grad():
        logits = model(**batch).logits
        for b, r in enumerate(rows):
            s = 0
            for n in r.seq_lens:
                alone = model(input_ids=batch["input_ids"][b:b + 1, s:s + n]).logits[0]
                assert (alone - logits[b, s:s + n]).abs().max() < 1e-5
                s += n


def test_manifest_counts_and_reuse_by_content(tmp_path):
    from domainspec.eval.benchmarks.humaneval import HUMANEVAL
    with gzip.open(HUMANEVAL.default_source(), "rt") as f:
        he = json.loads(f.readline())
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"text": t}) + "\n" for t in
                             ["Plain prose about lists.", he["prompt"] + he["canonical_solution"], "More prose."]))
    sources = [S(path="builtin:stdlib_code", weight=7, limit=6), S(path=str(notes), weight=2),
               S(path="builtin:math_corpus", weight=1, limit=30)]
    dec = DecontamConfig(benchmarks=["humaneval"])
    folder, man = _prep(tmp_path, sources, seq_len=128, workers=2, decontam=dec, fim=FIMConfig(rate=1.0))
    assert man["decontam"] == {"kept": man["documents"], "dropped": 1, "by_benchmark": {"humaneval": 1}}
    assert json.loads((folder / "dropped.jsonl").read_text())["task_id"] == "HumanEval/0"
    src = man["sources"]
    assert src["notes"]["documents"] == 2 and src["notes"]["dropped"] == 1
    assert man["fim_documents"] == src["stdlib_code"]["fim_documents"] == src["stdlib_code"]["documents"] > 0
    assert sum(s["tokens"] for s in src.values()) == man["tokens"] - man["pad_tokens"]
    assert man["domains"]["code"]["tokens"] == src["stdlib_code"]["tokens"]
    assert man["packing_efficiency"] == (man["tokens"] - man["pad_tokens"]) / man["tokens"]
    # same sources and settings: the folder is found, not rebuilt (with any worker count)
    again, man2 = _prep(tmp_path, sources, seq_len=128, workers=0, decontam=dec, fim=FIMConfig(rate=1.0))
    assert again == folder and man2 == man
    # one changed byte in a source file: a new key, a new preparation
    notes.write_text(notes.read_text().replace("More prose.", "More prose!"))
    changed, _ = _prep(tmp_path, sources, seq_len=128, decontam=dec, fim=FIMConfig(rate=1.0))
    assert changed != folder and changed.parent == folder.parent


def test_worker_count_and_shard_size_do_not_change_the_sequences(tmp_path):
    a, _ = _prep(tmp_path / "a", workers=0)
    b, man = _prep(tmp_path / "b", workers=2, batch_documents=5, shard_tokens=64 * 7)
    assert len(man["shards"]) > 2
    da, db = ShardDataset(a), ShardDataset(b)
    assert len(da) == len(db) and all(da[i].to_dict() == db[i].to_dict() for i in range(len(da)))


def test_unreadable_file_in_a_source_folder_stops_with_its_path(tmp_path):
    repo = tmp_path / "code"
    repo.mkdir()
    (repo / "good.py").write_text("def f():\n    return 1\n")
    (repo / "bad.py").write_bytes(b"x = '\xff\xfe'\n")
    with pytest.raises(DataError, match=r"bad\.py is not UTF-8 text.*Convert it to UTF-8, remove it"):
        _prep(tmp_path, [S(path=str(repo), domain="code")])


def test_shard_from_another_tokenizer_or_preparation_is_refused(tmp_path):
    from domainspec.common.data.tokenization import tokenizer_fingerprint
    from domainspec.common.models.tiny import train_tokenizer
    from domainspec.common.data.builtin.math_problems import math_corpus_documents
    other = train_tokenizer(list(math_corpus_documents(100)), vocab_size=400)
    mine, _ = _prep(tmp_path / "a")
    theirs, _ = _prep(tmp_path / "b", tok=other)
    with pytest.raises(ShardError, match=r"manifest.json: these shards were tokenized with another tokenizer.*"
                                         r"Prepare the data with this model's tokenizer"):
        ShardDataset(theirs, tokenizer=tokenizer_fingerprint(small_tokenizer()))
    shutil.copy(theirs / "shard_00000.tokens", mine / "shard_00000.tokens")  # a foreign shard in the folder
    with pytest.raises(ShardError, match=rf"{mine}/shard_00000.tokens: shard was tokenized with another tokenizer"
                                         rf".*delete {mine} and prepare again"):
        ShardDataset(mine)


def test_edited_manifest_is_refused(tmp_path):
    folder, man = _prep(tmp_path)
    (folder / "manifest.json").write_text(json.dumps({**man, "sequences": man["sequences"] + 1}))
    with pytest.raises(ShardError, match=rf"{folder}/manifest.json: the manifest's hash does not match its "
                                         rf"contents.*Delete {folder} and prepare again"):
        ShardDataset(folder)
    with pytest.raises(ShardError, match="hash does not match"):  # and prepare does not silently reuse it
        _prep(tmp_path)
    with pytest.raises(ShardError, match="no such file.*Prepare the data"):
        read_manifest(tmp_path / "nowhere")


def test_cli_prepare_then_reuse(tmp_path, capsys, caplog):
    from domainspec.common.cli import main
    cfg = tmp_path / "cpt.yaml"
    cfg.write_text(f"""\
model: {{name_or_path: tiny}}
seq_len: 64
data: [{{path: "builtin:math_corpus", limit: 40}}]
decontam: {{enabled: false}}
prepare: {{dir: "{tmp_path / 'shared'}", workers: 1}}
""")
    argv = ["cpt", "prepare", "--config", str(cfg), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    folders = list((tmp_path / "shared").iterdir())
    assert len(folders) == 1 and "cpt prepare: 40 documents" in out and str(folders[0]) in out
    with caplog.at_level("INFO", logger="domainspec.common.data.prepare"):
        assert main(argv) == 0
    assert "reusing" in caplog.text and list((tmp_path / "shared").iterdir()) == folders
    assert not (tmp_path / "run").exists()  # with prepare.dir set, only the shards are written


def test_cpt_data_stage_prepares_what_the_cpt_stage_then_reuses(tmp_path, caplog):
    from domainspec.common.pipeline.stages import StageContext, get_stage_type
    from domainspec.common.recipes.cpt import CPTConfig, build_dataset
    stage = get_stage_type("cpt_data")
    cfg = CPTConfig(model={"name_or_path": "tiny"}, seq_len=64, data=[{"path": "builtin:math_corpus", "limit": 30}],
                    decontam={"enabled": False}, prepare={"workers": 0})
    res = stage.run(cfg, StageContext(out_dir=tmp_path / "stage", pipeline="p", stage="data"))
    assert res["sequences"] > 0 and res["documents"] == 30
    root = tmp_path / "stage" / stage.outputs["data"]
    assert res["data"].startswith(str(root))
    # the cpt stage with prepare.dir pointing at that output (${data.data} in pipelines.yaml) reuses it
    from domainspec.common.models.loading import load_tokenizer
    shared = cfg.model_copy(update={"prepare": cfg.prepare.model_copy(update={"dir": str(root)})})
    with caplog.at_level("INFO", logger="domainspec.common.data.prepare"):
        ds = build_dataset(shared, load_tokenizer(cfg.model), tmp_path / "cpt")
    assert "reusing" in caplog.text and str(ds.folder) == res["data"] and len(ds) == res["sequences"]


def test_real_scale_pipelines_train_on_prepared_data():
    """coder-7b / math-7b: each cpt stage runs after a cpt_data stage with the very data settings and
    prepare root (so it finds that stage's shards by content key instead of preparing again), and
    coder-7b's repo-level stage is the long-context one."""
    from pathlib import Path

    from domainspec.common.pipeline.plan import load_plan
    root = Path(__file__).resolve().parents[1]
    plan = load_plan(root / "pipelines.yaml", pipelines=["coder-7b", "math-7b"], workdir="/nonexistent/wd")
    data_keys = ("data", "seq_len", "fim", "decontam", "max_documents", "prepare")
    for pname, pairs in {"coder-7b": [("data", "cpt"), ("repo_data", "cpt_repo")],
                         "math-7b": [("data", "cpt")]}.items():
        stages = {s.name: s for s in plan.pipelines[pname]}
        for data_stage, cpt_stage in pairs:
            d, c = stages[data_stage], stages[cpt_stage]
            assert d.type.name == "cpt_data" and c.type.name == "cpt" and data_stage in c.deps
            assert c.launcher.kind == "slurm"
            for key in data_keys:
                assert getattr(d.config, key) == getattr(c.config, key), (pname, cpt_stage, key)
            assert d.config.train.seed == c.config.train.seed  # the mix / FIM seed is part of the key
            assert d.config.prepare.dir and d.config.prepare.dir.startswith("/shared/")
    repo = {s.name: s for s in plan.pipelines["coder-7b"]}["cpt_repo"].config
    assert repo.seq_len == 32768 and repo.model.rope_theta == 1e6
    assert [s.repo_level for s in repo.data] == [True] and repo.data[0].repo_max_tokens == 32768
    assert repo.model.name_or_path.endswith("cpt/final")  # continues the file-level model
    sft = {s.name: s for s in plan.pipelines["coder-7b"]}["sft"].config
    assert sft.model.name_or_path.endswith("cpt_repo/final")
