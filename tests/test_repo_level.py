"""Repo-level documents (Qwen2.5-Coder format): exact tokens, import order, FIM on the last file, budget."""
from __future__ import annotations

import json
import random

import pytest

from data_helpers import small_tokenizer
from domainspec.common.data.fim import FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, FIMConfig
from domainspec.common.data.repo_level import (FILE_SEP, REPO_NAME, RepoFile, RepoStats, order_files, python_imports,
                                               render_repo, repo_document, repo_documents, repos_from_folder,
                                               repos_from_rows, undo_repo_fim)
from domainspec.common.data.sources import DataError

# a planted repository: main imports models (absolute) and utils (relative); models imports db;
# db imports nothing; a src/ layout package imported by its short name; one import cycle
PLANTED = {
    "app/__init__.py": "",
    "app/main.py": "from app.models import User\nfrom .utils import helper\n\nprint(User(), helper())\n",
    "app/models.py": "import app.db as db\n\n\nclass User:\n    session = db.Session\n",
    "app/db.py": "class Session:\n    pass\n",
    "app/utils.py": "def helper():\n    return 1\n",
    "src/lib/core.py": "from lib import extra\n\nVALUE = extra.X",
    "src/lib/extra.py": "X = 2\n",
    "z_cycle_a.py": "import z_cycle_b\n",
    "z_cycle_b.py": "import z_cycle_a\n",
}


def _files(d=PLANTED):
    return [RepoFile(p, c) for p, c in d.items()]


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_format_is_token_exact_with_qwen_special_tokens():
    tok = small_tokenizer()
    files = [RepoFile("pkg/a.py", "def f():\n    return 1\n"), RepoFile("pkg/b.py", "x = 2")]
    doc = render_repo("octo/demo", files)
    assert doc == ("<|repo_name|>octo/demo\n<|file_sep|>pkg/a.py\ndef f():\n    return 1\n"
                   "<|file_sep|>pkg/b.py\nx = 2")
    repo_id, sep_id = tok.convert_tokens_to_ids([REPO_NAME, FILE_SEP])
    assert repo_id != sep_id and tok.unk_token_id not in (repo_id, sep_id)
    want = ([repo_id] + _ids(tok, "octo/demo\n") + [sep_id] + _ids(tok, "pkg/a.py\ndef f():\n    return 1\n")
            + [sep_id] + _ids(tok, "pkg/b.py\nx = 2"))
    assert _ids(tok, doc) == want
    assert tok.decode(want) == doc
    # a content without a final newline gets one before the next separator (never after the last file)
    assert render_repo("r", [RepoFile("a.py", "x = 1"), RepoFile("b.py", "y = 2")]).endswith(
        "x = 1\n<|file_sep|>b.py\ny = 2")


def test_python_imports_resolve_relative_and_from_imports():
    assert python_imports("app/main.py", PLANTED["app/main.py"]) >= {"app.models", "app.models.User", "app.utils"}
    assert python_imports("a/b/c.py", "from ..x import y\nimport os.path\n") >= {"a.x", "a.x.y", "os.path"}
    assert python_imports("broken.py", "def (:\n") == set()


def test_planted_repo_files_come_after_what_they_import():
    order = [f.path for f in order_files(_files())]
    assert order == ["app/__init__.py", "app/db.py", "app/models.py", "app/utils.py", "app/main.py",
                     "src/lib/extra.py", "src/lib/core.py", "z_cycle_a.py", "z_cycle_b.py"]
    # the rule holds for every planted edge, whatever the input order
    shuffled = _files()
    random.Random(1).shuffle(shuffled)
    assert [f.path for f in order_files(shuffled)] == order


def test_fim_on_the_last_file_decodes_back_to_the_repo_text():
    tok = small_tokenizer()
    stats = RepoStats()
    doc = repo_document("octo/app", _files(), tok, fim=FIMConfig(rate=1.0), rng=random.Random(0), stats=stats)
    plain = render_repo("octo/app", order_files(_files()))
    head, _, last = doc.rpartition(FILE_SEP)
    assert head == plain.rpartition(FILE_SEP)[0]  # only the last file changes
    assert last.startswith("z_cycle_b.py\n" + FIM_PREFIX) and FIM_SUFFIX in last and FIM_MIDDLE in last
    assert doc.count(FIM_PREFIX) == 1 and stats.fim_documents == 1
    assert undo_repo_fim(tok.decode(_ids(tok, doc))) == plain
    fim_ids = tok.convert_tokens_to_ids([FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE])
    assert all(i in _ids(tok, doc) for i in fim_ids)
    # rate 0: no FIM; the per-repo choice is seeded by (seed, repo name)
    assert repo_document("octo/app", _files(), fim=FIMConfig(rate=0.0), rng=random.Random(0)) == plain
    a = list(repo_documents([("r1", _files()), ("r2", _files())], fim=FIMConfig(rate=0.5), seed=3))
    assert a == list(repo_documents([("r1", _files()), ("r2", _files())], fim=FIMConfig(rate=0.5), seed=3))


def test_token_budget_keeps_whole_files_in_order_and_cuts_the_rest():
    tok = small_tokenizer()
    files = [RepoFile(f"m{i}.py", f"def f{i}(x):\n    return x + {i}\n" * (i + 1)) for i in range(4)]
    two = render_repo("r", files[:2])
    three = render_repo("r", files[:3])
    budget = len(_ids(tok, two)) + 1
    assert len(_ids(tok, three)) > budget
    stats = RepoStats()
    doc = repo_document("r", files, tok, max_tokens=budget, stats=stats)
    assert doc == two and len(_ids(tok, doc)) <= budget
    assert (stats.files_kept, stats.files_cut, stats.by_repo) == (2, 2, {"r": 2})
    # exactly at the limit: kept
    assert repo_document("r", files, tok, max_tokens=len(_ids(tok, two))) == two
    # FIM form within the budget too (or the document stays plain)
    fdoc = repo_document("r", files, tok, max_tokens=budget, fim=FIMConfig(rate=1.0), rng=random.Random(0))
    assert len(_ids(tok, fdoc)) <= budget and undo_repo_fim(fdoc) in (two, render_repo("r", files[:1]))
    # the first file alone over the budget: no document, counted
    stats = RepoStats()
    assert repo_document("r", files, tok, max_tokens=5, stats=stats) is None and stats.repos_too_long == 1
    with pytest.raises(ValueError, match="needs a tokenizer"):
        repo_document("r", files, max_tokens=10)


def test_rows_and_folder_inputs(tmp_path):
    rows = [{"repo_name": "a/x", "path": "m.py", "content": "import n\n"},
            {"repo_name": "a/x", "path": "n.py", "content": "N = 1\n"},
            {"repo_name": "b/y", "path": "k.py", "content": "K = 1\n"}]
    repos = list(repos_from_rows(rows))
    assert [(n, [f.path for f in fs]) for n, fs in repos] == [("a/x", ["m.py", "n.py"]), ("b/y", ["k.py"])]
    assert [f.path for f in order_files(repos[0][1])] == ["n.py", "m.py"]
    with pytest.raises(DataError, match=r"f.jsonl: row 4: repository 'a/x' appeared before.*sort the rows"):
        list(repos_from_rows(rows + [rows[0]], where="f.jsonl"))
    with pytest.raises(DataError, match=r"row 1: field 'content' is missing"):
        list(repos_from_rows([{"repo_name": "a", "path": "p"}]))
    for name, files in (("one", {"a.py": "A = 1\n", "sub/b.py": "from a import A\n"}), ("two", {"c.py": "C = 3\n"})):
        for p, c in files.items():
            (tmp_path / name / p).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / p).write_text(c)
    (tmp_path / "one" / "notes.txt").write_text("ignored: not a .py file")
    got = [(n, [f.path for f in fs]) for n, fs in repos_from_folder(tmp_path)]
    assert got == [("one", ["a.py", "sub/b.py"]), ("two", ["c.py"])]
    (tmp_path / "two" / "bad.py").write_bytes(b"\xff\xfe")
    with pytest.raises(DataError, match=r"two/bad.py is not UTF-8 text"):
        list(repos_from_folder(tmp_path))
    json.dumps(got)  # plain data


def test_prepare_builds_repo_documents_from_a_folder_and_rows(tmp_path):
    """repo_level sources through the prepare step: one document per repository, budget and FIM applied."""
    from domainspec.common.data.decontam import DecontamConfig
    from domainspec.common.data.prepare import PrepareConfig, prepare
    from domainspec.common.data.shards import ShardDataset
    from domainspec.common.data.sources import DataSourceConfig as S

    tok = small_tokenizer()
    repos = tmp_path / "repos"
    for p, c in PLANTED.items():
        (repos / "octo" / p).parent.mkdir(parents=True, exist_ok=True)
        (repos / "octo" / p).write_text(c)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"repo_name": "b/y", "path": p, "content": c}) + "\n"
                            for p, c in [("k.py", "from j import J\nK = J\n"), ("j.py", "J = 1\n")]))
    sources = [S(path=str(repos), repo_level=True), S(path=str(rows), repo_level=True, text_field="content")]
    folder, man = prepare(sources, tok, PrepareConfig(workers=0), tmp_path / "data", 64,
                          fim=FIMConfig(rate=1.0), decontam=DecontamConfig(enabled=False))
    ds = ShardDataset(folder)
    eos = tok.eos_token_id
    ids = [t for i in range(len(ds)) for t, lab in zip(ds[i].input_ids, ds[i].labels)
           if not (t == eos and lab == -100)]  # drop the final padding
    docs = tok.decode(ids).split(tok.eos_token)[:-1]
    by = [RepoFile("j.py", "J = 1\n"), RepoFile("k.py", "from j import J\nK = J\n")]
    plain = {render_repo("octo", order_files(_files())), render_repo("b/y", by)}
    assert len(docs) == 2 and {undo_repo_fim(d) for d in docs} == plain
    assert all(d.count(FIM_PREFIX) == 1 for d in docs) and man["fim_documents"] == 2
    assert man["sources"]["repos"]["domain"] == "code" and man["sources"]["repos"]["files_cut"] == 0
    # a budget: the octo repository keeps its first files whole, the rest are counted as cut
    budget = len(_ids(tok, render_repo("octo", order_files(_files())[:3])))
    _, man2 = prepare([S(path=str(repos), repo_level=True, repo_max_tokens=budget)], tok, PrepareConfig(workers=0),
                      tmp_path / "data", 64, decontam=DecontamConfig(enabled=False))
    assert man2["sources"]["repos"]["files_cut"] == len(PLANTED) - 3
    assert man2["tokens"] - man2["pad_tokens"] == budget + 1  # + EOS
