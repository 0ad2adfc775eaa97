"""Layout guard (DESIGN.md): math/ must never shadow the standard-library math module."""
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_math_folder_has_no_init():
    assert not (ROOT / "math" / "__init__.py").exists()


def test_stdlib_math_and_domainspec_math_from_repo_root():
    code = ("import math, random; assert math.sqrt(4) == 2.0; random.random(); "
            "import domainspec.math, domainspec.common.config; "
            "import importlib.util as u; "
            "spec = u.find_spec('domainspec.math'); "
            "assert any(p.endswith('math') for p in spec.submodule_search_locations), spec")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_plain_install_keeps_both(tmp_path):
    """A non-editable `pip install .` also maps domainspec.math to the folder's modules."""
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    mods = sorted(p.stem for p in (ROOT / "math").glob("*.py"))
    # -S: skip site.py so the editable install's path hook does not win; third-party
    # packages are still found through the plain site-packages path appended below.
    purelib = sysconfig.get_paths()["purelib"]
    probe = (f"import sys; sys.path.insert(0, {str(target)!r}); sys.path.append({purelib!r}); "
             "import math; assert math.sqrt(4) == 2.0; "
             "import importlib; import domainspec.math as m; "
             f"[importlib.import_module('domainspec.math.' + n) for n in {mods!r}]; "
             f"assert all(p.startswith({str(target)!r}) for p in m.__path__), list(m.__path__)")
    r = subprocess.run([sys.executable, "-S", "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
