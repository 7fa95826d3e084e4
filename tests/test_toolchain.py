"""setup.py's one-toolchain check (issue 7): the compiler, its libstdc++ and nvcc's host
compiler are chosen once and checked against the torch being built for.

setup.py runs ``setup()`` on import, so its toolchain functions are loaded by themselves
from its source (ast) and run with fake compilers and fake libstdc++ files.
"""
from __future__ import annotations

import ast
import os
import shutil
import stat
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
_NAMES = {"ToolchainError", "_run", "_glibcxx_level", "_loaded_libstdcxx", "_sibling_c_compiler",
          "_choose_toolchain", "_truthy"}


@pytest.fixture()
def tc(tmp_path) -> dict:
    tree = ast.parse(SETUP.read_text())
    body = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in _NAMES]
    assert {n.name for n in body} == _NAMES
    ns: dict = {"os": os, "shutil": shutil, "__name__": "setup_toolchain", "ROOT": str(tmp_path)}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(SETUP), "exec"), ns)
    return ns


def _fake_lib(path: Path, level: int) -> str:
    path.write_bytes(b"\0".join(f"GLIBCXX_3.4.{n}".encode() for n in range(level + 1)))
    return str(path)


def _fake_compiler(tmp_path: Path, lib: str, macros: str = "#define __GNUC__ 12") -> str:
    exe = tmp_path / "bin" / "x86_64-test-g++"
    exe.parent.mkdir(exist_ok=True)
    exe.write_text(f"""#!/bin/sh
case "$*" in
  *-print-file-name*) echo {lib} ;;
  *-dumpfullversion*) echo 99.1.0 ;;
  *-dM*) echo '{macros}' ;;
esac
""")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "bin" / "x86_64-test-gcc").write_text("")
    return str(exe)


def test_glibcxx_level_reads_the_highest_version(tc, tmp_path) -> None:
    assert tc["_glibcxx_level"](_fake_lib(tmp_path / "l.so", 33)) == 33
    assert tc["_glibcxx_level"](str(tmp_path / "missing.so")) == -1


def test_one_compiler_for_host_and_nvcc(tc, tmp_path, monkeypatch, capsys) -> None:
    lib = _fake_lib(tmp_path / "lib.so", 30)
    cxx = _fake_compiler(tmp_path, lib)
    monkeypatch.setenv("CXX", cxx)
    tc["_loaded_libstdcxx"] = lambda: lib
    flags = tc["_choose_toolchain"](True)
    assert flags == ["-ccbin", cxx]
    assert os.environ["CXX"] == cxx and os.environ["CC"].endswith("x86_64-test-gcc")
    out = capsys.readouterr().out
    assert f"host C++ compiler {cxx} (GCC 99.1.0); nvcc host compiler (-ccbin): {cxx}" in out
    assert tc["_choose_toolchain"](False) == []
    assert "CPU-only build" in (tmp_path / "build" / "dctqa-toolchain.txt").read_text()


def test_newer_libstdcxx_than_torch_runs_with_fails_early(tc, tmp_path, monkeypatch) -> None:
    """The GPU machine's case: a compiler whose C++ runtime is not the one torch loads."""
    cxx = _fake_compiler(tmp_path, _fake_lib(tmp_path / "new.so", 33))
    monkeypatch.setenv("CXX", cxx)
    old = _fake_lib(tmp_path / "old.so", 30)
    tc["_loaded_libstdcxx"] = lambda: old
    with pytest.raises(SystemExit, match=r"GLIBCXX_3\.4\.33.*GLIBCXX_3\.4\.30"):
        tc["_choose_toolchain"](True)
    assert "problem:" in (tmp_path / "build" / "dctqa-toolchain.txt").read_text()
    monkeypatch.setenv("DCTQA_ALLOW_TOOLCHAIN_MISMATCH", "1")
    assert tc["_choose_toolchain"](True) == ["-ccbin", cxx]


def test_non_gnu_compiler_and_missing_compiler_fail(tc, tmp_path, monkeypatch) -> None:
    lib = _fake_lib(tmp_path / "lib.so", 30)
    tc["_loaded_libstdcxx"] = lambda: lib
    monkeypatch.setenv("CXX", _fake_compiler(tmp_path, lib, macros="#define _MSC_VER 1"))
    with pytest.raises(SystemExit, match="not a GCC or clang"):
        tc["_choose_toolchain"](False)
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(SystemExit, match="not found"):
        tc["_choose_toolchain"](False)
