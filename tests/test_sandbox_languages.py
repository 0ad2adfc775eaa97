"""The sandbox runs compiled and interpreted non-Python programs (common/sandbox/program.py):
typed statuses of the compile and run steps, the memory rlimit kinds, files and caches inside the
private directory, and the hostile suite's kinds of harm contained for C++, JavaScript and Go.

Toolchains are resolved the way benchmarks resolve them (domainspec.eval.languages); a missing
one skips here with what to install, and fails under CI=true (tests/data_helpers.py convention).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from pathlib import Path

import pytest

from domainspec.common.sandbox.pool import UID_BASE, Sandbox, SandboxConfig, Status
from domainspec.common.sandbox.program import Program
from domainspec.eval.languages import language_module
from domainspec.eval.languages.base import Build, ToolchainMissing
from test_sandbox_hostile import pids_of_uids, tagged_pids

REPO = Path(__file__).resolve().parents[1]
TOKEN = secrets.token_hex(4)
SLEEP_MARK = f"7{int(TOKEN, 16) % 1000}.125"


def tools(language: str, build: Build | None = None) -> dict[str, str]:
    """Absolute tool paths of a language's (MultiPL-E) build; a missing toolchain fails under CI."""
    mod = language_module(language)
    try:
        return mod.LANGUAGE.check(build or mod.MULTIPL_E.build)
    except ToolchainMissing as e:
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"CI needs this toolchain: {e}", pytrace=False)
        pytest.skip(str(e))


def cpp(source: str) -> Program:
    return Program(files=(("main.cpp", source),), compile=(tools("cpp")["g++"], "-o", "prog", "main.cpp"),
                   run=("./prog",), language="cpp")


def java(source: str, memory: str = "data") -> Program:
    t = tools("java")
    return Program(files=(("Main.java", source),), compile=(t["javac"], "Main.java"),
                   run=(t["java"], "-XX:+UseSerialGC", "-XX:-UsePerfData", "-cp", ".", "Main"), memory=memory)


def js(source: str) -> Program:
    return Program(files=(("main.js", source),), run=(tools("js")["node"], "main.js"), memory="data")


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=2, timeout_s=3, compile_timeout_s=30, memory_mb=1024)) as sb:
        yield sb


def test_compile_and_run_statuses_beside_python(sandbox):
    sleeper = Program(files=(("main.c", "int main(){}"),), compile=(shutil.which("sleep"), "30"), run=("./prog",))
    programs = [cpp('#include <cstdio>\nint main() { std::puts("ok"); return 0; }\n'),
                "print('py')",
                cpp("int main() { return 3; }\n"),
                cpp("int main() { return undeclared_name; }\n"),
                cpp("int main() { volatile long x = 0; while (true) x++; }\n"),
                cpp("#include <cstdlib>\nint main() { std::abort(); }\n"),
                "raise SystemExit(0)"]
    with Sandbox(SandboxConfig(workers=2, timeout_s=2, compile_timeout_s=1)) as fast:
        compile_overrun = fast.run(sleeper)
    ok, py, wrong, bad, loop, abort, early = sandbox.run_many(programs, timeout_s=[3, 3, 3, 3, 1.5, 3, 3])
    assert (ok.status, ok.stdout, ok.exit_code) == (Status.PASSED, "ok\n", 0) and ok.compile_s > 0
    assert (py.status, py.stdout, py.compile_s) == (Status.PASSED, "py\n", None)
    assert (wrong.status, wrong.exit_code) == (Status.FAILED, 3)
    last = bad.stderr.strip().splitlines()[-1]
    assert bad.status is Status.ERROR and last.startswith("[sandbox] compile error: ")
    assert "error" in last and "undeclared_name" in last  # the compiler's own error line
    assert loop.status is Status.TIMEOUT and loop.time_limit_s == 1.5 and 1.4 < loop.duration_s < 3
    assert abort.status is Status.FAILED and "SIGABRT" in abort.stderr
    assert early.status is Status.FAILED  # Python semantics unchanged beside compiled programs
    assert compile_overrun.status is Status.ERROR
    assert "compile step exceeded its limit of 1s" in compile_overrun.stderr and compile_overrun.duration_s < 3


@pytest.mark.parametrize("output, line", [
    ("main.cpp:1:20: error: 'x' was not declared\n    1 | int main(){ return x; }\n      |  ^\n", "main.cpp:1:20: error: 'x' was not declared"),
    ("error[E0425]: cannot find value `x`\n --> main.rs:2:5\n  |\n\nerror: aborting due to 1 previous error\n\n"
     "For more information about this error, try `rustc --explain E0425`.\n", "error[E0425]: cannot find value `x`"),
    ("Main.java:3: error: ';' expected\n        return x\n                ^\n1 error\n", "Main.java:3: error: ';' expected"),
    ("# command-line-arguments\n./main_test.go:6:5: imported and not used: \"strings\"\nFAIL\tx [build failed]\n",
     './main_test.go:6:5: imported and not used: "strings"'),
    ("main.ts(7,14): error TS2304: Cannot find name 'y'.\n\nFound 1 error in main.ts:7\n", "main.ts(7,14): error TS2304: Cannot find name 'y'."),
    ("PHP Parse error:  syntax error in main.php on line 8\nErrors parsing main.php\n", "PHP Parse error:  syntax error in main.php on line 8"),
    ("something odd\n", "something odd"),
])
def test_compile_error_detail_is_the_compilers_error_line(output, line):
    from domainspec.common.sandbox.worker import _last_error_line

    assert _last_error_line(output) == line


def test_missing_compiler_binary_is_an_error(sandbox):
    r = sandbox.run(Program(files=(("a.txt", ""),), run=("/nonexistent/tool", "a.txt")))
    assert r.status is Status.ERROR and "could not start /nonexistent/tool" in r.stderr


def test_program_file_names_are_plain():
    for name in ("../x.cpp", "/etc/x", "a/b.c", ""):
        with pytest.raises(ValueError, match="plain name"):
            Program(files=((name, ""),), run=("./x",))
    with pytest.raises(ValueError, match="memory"):
        Program(files=(("a", ""),), run=("./x",), memory="rss")


def test_files_home_and_caches_live_in_the_private_dir(sandbox):
    sh = shutil.which("sh")
    check = ('[ "$PWD" = "$HOME" ] && [ "$TMPDIR" = "$HOME" ] && [ "$XDG_CACHE_HOME" = "$HOME/.cache" ] '
             '&& [ -f built ] && [ "$MARK" = "$PWD/m" ] && grep -q hello src.txt && echo "$PWD"')
    r = sandbox.run(Program(files=(("src.txt", "hello\n"), ("check.sh", check)),
                            compile=(sh, "-c", "touch built && mkdir -p .cache/tool"),
                            run=(sh, "check.sh"), env=(("MARK", "{dir}/m"),)))
    assert r.status is Status.PASSED, r.stderr
    home = r.stdout.strip()
    assert home.startswith("/tmp/") and not Path(home).exists()  # removed after the program


def test_memory_limit_kinds(sandbox):
    """memory_mb on RLIMIT_AS stops a JVM before it starts; on RLIMIT_DATA the JVM runs and a real
    allocation over the limit still fails; C++ keeps the address-space limit."""
    hello = "public class Main { public static void main(String[] a) { System.out.println(\"jvm\"); } }\n"
    hog = ("public class Main { public static void main(String[] a) { long[][] k = new long[64][];\n"
           "  for (int i = 0; i < 64; i++) k[i] = new long[4 << 20]; System.out.println(k.length); } }\n")
    cpp_hog = ("#include <cstdlib>\n#include <cstring>\nint main() { char *p = (char *) std::malloc(2L << 30);\n"
               "  if (!p) return 7; std::memset(p, 1, 2L << 30); return 0; }\n")
    with Sandbox(SandboxConfig(workers=2, timeout_s=10, memory_mb=512)) as small:
        as_jvm, data_jvm, data_hog, cpp_big = small.run_many([java(hello, "as"), java(hello), java(hog), cpp(cpp_hog)])
    assert as_jvm.status is not Status.PASSED  # the JVM (or javac) cannot reserve its address space
    assert (data_jvm.status, data_jvm.stdout) == (Status.PASSED, "jvm\n"), data_jvm.stderr
    said = data_hog.stdout + data_hog.stderr  # the JVM reports a failed commit on stdout
    assert data_hog.status is Status.FAILED and ("OutOfMemoryError" in said or "insufficient memory" in said), said
    assert (cpp_big.status, cpp_big.exit_code) == (Status.FAILED, 7)


# ------------------------------------------------------------------ hostile programs, compiled


@pytest.fixture(scope="module")
def server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def decoy():
    d = REPO / f".sandbox_lang_decoy_{TOKEN}"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "precious.txt").write_text("keep me")
    yield {"dir": d, "escape": REPO / f"SANDBOX_LANG_ESCAPE_{TOKEN}"}
    shutil.rmtree(d, ignore_errors=True)
    (REPO / f"SANDBOX_LANG_ESCAPE_{TOKEN}").unlink(missing_ok=True)


def go_program(source: str) -> Program:
    mod = language_module("go")
    return mod.LANGUAGE.program(source, mod.MULTIPL_E.build)


def hostile(decoy, port) -> dict[str, Program]:
    go_dial = ('package x_test\n\nimport (\n    "net"\n    "testing"\n    "time"\n)\n\n'
               'func TestDial(t *testing.T) {\n'
               f'    c, err := net.DialTimeout("tcp", "127.0.0.1:{port}", 2*time.Second)\n'
               '    if err != nil { t.Fatal(err) }\n    c.Write([]byte("x"))\n}\n')
    return {
        "cpp_fork_bomb": cpp("#include <unistd.h>\nint main() { while (true) fork(); }\n"),
        "cpp_write_host": cpp(f'#include <cstdio>\nint main() {{ FILE *f = std::fopen("{decoy["escape"]}", "w");\n'
                              '  if (!f) return 1; std::fputs("escaped", f); return std::fclose(f); }\n'),
        "cpp_delete_host": cpp(f'#include <cstdio>\nint main() {{ return std::remove("{decoy["dir"]}/sub/precious.txt"); }}\n'),
        "cpp_escaping_child": cpp('#include <unistd.h>\nint main() { if (fork() == 0) { setsid();\n'
                                  f'  execl("/bin/sleep", "sleep", "{SLEEP_MARK}", (char *) 0); }} return 0; }}\n'),
        "js_network": js(f"const s = require('net').connect({port}, '127.0.0.1', () => {{ s.write('x'); s.end(); }});\n"
                         "s.on('error', () => process.exit(1));\n"),
        "go_network": go_program(go_dial),
    }


def test_hostile_compiled_programs_are_contained(sandbox, decoy, server):
    progs = hostile(decoy, server.getsockname()[1])
    canary = cpp('#include <cstdio>\nint main() { std::puts("canary"); }\n')
    names, batch = [], []
    for name, prog in progs.items():
        names += [name, f"canary_after_{name}"]
        batch += [prog, canary]
    uid_drop = sandbox._workers[0].info["uid_drop"]
    results = dict(zip(names, sandbox.run_many(batch, timeout_s=3)))
    for name in progs:
        if name != "cpp_escaping_child":  # exits 0 itself; what matters is that its child is gone
            assert results[name].status in {Status.FAILED, Status.TIMEOUT}, (name, results[name])
        assert results[f"canary_after_{name}"].stdout == "canary\n", (name, results[f"canary_after_{name}"])
    assert (decoy["dir"] / "sub" / "precious.txt").read_text() == "keep me"
    if uid_drop or sandbox.level == "bwrap":  # without both, host files are writable (documented)
        assert not decoy["escape"].exists()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and tagged_pids(SLEEP_MARK):
        time.sleep(0.1)
    assert not tagged_pids(SLEEP_MARK)
    if uid_drop:
        assert pids_of_uids({UID_BASE + w.proc.pid for w in sandbox._workers}) == []
    if sandbox.level != "rlimits":  # rlimits has no network isolation (documented)
        with pytest.raises(BlockingIOError):
            server.accept()


def test_a_program_of_another_type_is_refused_before_anything_runs(sandbox):
    with pytest.raises(TypeError, match="Python source \\(str\\) or a Program, got bytes"):
        sandbox.run_many(["print(1)", b"print(2)"])
    assert sandbox.run("print(3)").stdout == "3\n"  # the sandbox is still open
