"""setup.py's one-toolchain check (issue 7): the compiler, its libstdc++ and nvcc's host
compiler are chosen once and checked against the torch being built for.

setup.py runs ``setup()`` on import, so its toolchain functions are loaded by themselves
from its source (ast) and run with fake compilers and fake libstdc++ files.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess
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


def _setup_function(name: str) -> dict:
    """One function (or constant) of setup.py, loaded by itself, as the fixture above does."""
    tree = ast.parse(SETUP.read_text())
    body = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name == name) or
            (isinstance(n, ast.Assign) and any(getattr(t, "id", None) == name for t in n.targets))]
    assert len(body) == 1, name
    ns: dict = {"os": os, "glob": __import__("glob")}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(SETUP), "exec"), ns)
    return ns


def test_sources_are_collected_recursively(tmp_path, monkeypatch) -> None:
    """New source folders (e.g. csrc/<op>/cpu/x86/) are built without editing setup.py; every
    .cu file and everything under a cuda/ folder is left out of the CPU-only build."""
    files = ["csrc/module.cpp", "csrc/common/cpu_features.cpp", "csrc/common/x86/reduce_avx2.cpp",
             "csrc/op/op.cpp", "csrc/op/cpu/op_cpu.cpp", "csrc/op/cpu/x86/op_avx512.cpp",
             "csrc/op/cuda/op_cuda.cpp", "csrc/op/cuda/op_kernels.cu", "csrc/op/cuda/sub/more.cpp",
             "csrc/op/cpu/lines.inc", "csrc/op/op.h", "csrc/common/util.cuh"]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("")
    monkeypatch.chdir(tmp_path)
    sources = _setup_function("_sources")["_sources"]
    cuda = {"csrc/op/cuda/op_cuda.cpp", "csrc/op/cuda/op_kernels.cu", "csrc/op/cuda/sub/more.cpp"}
    cpu = {f for f in files if f.endswith(".cpp")} - cuda
    assert sources(False) == sorted(cpu)
    assert sources(True) == sorted(cpu | cuda)


def test_real_sources_are_all_built(monkeypatch) -> None:
    """Every .cpp/.cu under csrc/ is in the CUDA build; the CPU build has the same minus CUDA."""
    monkeypatch.chdir(SETUP.parent)
    sources = _setup_function("_sources")["_sources"]
    on_disk = sorted(p.relative_to(SETUP.parent).as_posix() for p in (SETUP.parent / "csrc").rglob("*")
                     if p.suffix in (".cpp", ".cu"))
    assert sources(True) == on_disk and "csrc/module.cpp" in sources(False)
    assert not [s for s in sources(False) if s.endswith(".cu") or "/cuda/" in s]


def test_default_cuda_archs_cover_common_server_gpus() -> None:
    """T4 7.5, A100 8.0, A10 8.6, L4 8.9, H100/H200 9.0 natively, plus PTX for newer GPUs; one
    default (setup.py), which the Makefile does not override."""
    archs = _setup_function("DEFAULT_CUDA_ARCH_LIST")["DEFAULT_CUDA_ARCH_LIST"].split(";")
    assert archs == ["7.5", "8.0", "8.6", "8.9", "9.0+PTX"]
    makefile = (SETUP.parent / "Makefile").read_text()
    assert not re.search(r"^\s*(export\s+)?TORCH_CUDA_ARCH_LIST\s*[:?+]?=", makefile, re.M)


def test_nvcc_supports_the_default_archs() -> None:
    nvcc = os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc")
    if not os.path.exists(nvcc):
        pytest.skip(f"no CUDA toolkit ({nvcc} not found): the arch list is checked where one is installed")
    listed = set(subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, timeout=60).stdout.split())
    archs = _setup_function("DEFAULT_CUDA_ARCH_LIST")["DEFAULT_CUDA_ARCH_LIST"].split(";")
    wanted = {"compute_" + a.split("+")[0].replace(".", "") for a in archs}
    assert wanted <= listed, f"{nvcc} lacks {sorted(wanted - listed)} (has {sorted(listed)})"
