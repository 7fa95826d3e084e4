"""Build of the torch extension ``dctqa._C``; the package metadata is in pyproject.toml.

* CUDAExtension (CPU + CUDA kernels) when a CUDA toolkit is usable, else a CppExtension
  (CPU kernels only). ``DCTQA_NO_CUDA=1`` forces the CPU-only build; ``DCTQA_NO_EXT=1``
  builds no extension at all (the package then runs on its torch fallback).
* Needs torch at build time: pyproject.toml declares it in ``[build-system]`` for an
  isolated build; ``make`` builds with ``pip install --no-build-isolation -e ".[...]"``
  against the torch already installed, which is the one the extension then runs with.
* Sources: every ``.cpp`` under ``csrc/`` (any depth), plus, in a CUDA build, the ``.cu``
  files and everything under a ``cuda/`` folder (``_sources``).
* One C++ toolchain: the compiler in ``CXX`` (default ``c++``) builds the host code and is
  nvcc's host compiler (``-ccbin``); it is printed, and the build stops before compiling
  when it would link a newer libstdc++ than the one torch runs with (``_choose_toolchain``).
* GPU architectures: ``TORCH_CUDA_ARCH_LIST`` if set, else ``DEFAULT_CUDA_ARCH_LIST``.
"""
from __future__ import annotations

import glob
import os
import shutil

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))

# Native code for the common server GPUs: T4 (7.5), A100 (8.0), A10 (8.6), L4 (8.9),
# H100/H200 (9.0), and PTX of 9.0 that the driver compiles at load time for newer GPUs
# (B200 10.0, ...). nvcc 13.0 still targets 7.5 (`nvcc --list-gpu-arch` starts at
# compute_75: CUDA 13 dropped Maxwell, Pascal and Volta), and torch 2.14's cu130 wheel has the same
# floor (sm_75). The full list costs about 6 CPU-seconds more than 9.0 alone over the
# three .cu files (11 s against 4.4 s, nvcc 13.0 on one core), so CI builds it too.
DEFAULT_CUDA_ARCH_LIST = "7.5;8.0;8.6;8.9;9.0+PTX"


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _find_cuda_home() -> str | None:
    """The CUDA toolkit root (has bin/nvcc), trying CUDA_HOME, CUDA_PATH, /usr/local/cuda.

    The ``nvcc`` on PATH may be a wrapper script, so the toolkit root is not derived
    from it unless nothing else is found.
    """
    for cand in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if cand and os.path.exists(os.path.join(cand, "bin", "nvcc")):
            return cand
    nvcc = shutil.which("nvcc")
    if nvcc:
        real = os.path.realpath(nvcc)
        root = os.path.dirname(os.path.dirname(real))
        if os.path.exists(os.path.join(root, "include", "cuda_runtime.h")):
            return root
    return None


class ToolchainError(SystemExit):
    """The build would mix C++ runtimes or ABIs; raised before anything is compiled."""


def _run(cmd: list[str]) -> str:
    import subprocess

    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _glibcxx_level(path: str | None) -> int:
    """Highest GLIBCXX_3.4.N version a libstdc++ file defines (N), -1 if unknown."""
    import re

    if not path or not os.path.isfile(path):
        return -1
    with open(path, "rb") as f:
        found = re.findall(rb"GLIBCXX_3\.4\.(\d+)", f.read())
    return max((int(n) for n in found), default=-1)


def _loaded_libstdcxx() -> str | None:
    """The libstdc++ this process (which has imported torch) runs with, from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libstdc++.so" in line:
                    return os.path.realpath(line.split()[-1])
    except OSError:
        pass
    return None


def _sibling_c_compiler(cxx: str) -> str:
    """The C driver of the installation of C++ driver ``cxx`` (g++ -> gcc), else ``cxx``."""
    d, name = os.path.split(cxx)
    for a, b in (("clang++", "clang"), ("g++", "gcc"), ("c++", "cc")):
        if a in name:
            cand = os.path.join(d, name.replace(a, b))
            if os.path.exists(cand):
                return cand
    return cxx


def _choose_toolchain(use_cuda: bool) -> list[str]:
    """One C++ compiler for the host code and for nvcc's host side (``-ccbin``), checked
    against the torch it builds for; sets CXX and CC for torch.utils.cpp_extension and
    returns the nvcc flags. Fails early (ToolchainError) when the compiler would link a
    newer libstdc++ than the one torch runs with, or the C++ ABI flags of torch disagree,
    unless DCTQA_ALLOW_TOOLCHAIN_MISMATCH=1. See docs/building.md.
    """
    import torch

    name = os.environ.get("CXX") or "c++"
    cxx = shutil.which(name) or name
    if not shutil.which(cxx):
        raise ToolchainError(f"dctqa build: C++ compiler {name!r} not found; set CXX to a g++ or clang++")
    cfg = torch.__config__.show()
    torch_cc = next((ln.strip() for ln in cfg.splitlines() if ln.strip().startswith(("- GCC", "- clang"))), "- ?")[2:]
    abi = bool(torch._C._GLIBCXX_USE_CXX11_ABI)
    problems = []
    if abi != bool(torch.compiled_with_cxx11_abi()):
        problems.append("torch reports two different _GLIBCXX_USE_CXX11_ABI values")
    version = _run([cxx, "-dumpfullversion", "-dumpversion"]).split("\n")[0] or "?"
    macros = _run([cxx, "-dM", "-E", "-x", "c++", os.devnull])
    family = "clang" if "__clang__" in macros else "GCC" if "__GNUC__" in macros else None
    if family is None:
        problems.append(f"{cxx} is not a GCC or clang C++ compiler (no __GNUC__ in its predefined macros)")
    lib_build = os.path.realpath(_run([cxx, "-print-file-name=libstdc++.so.6"]) or "libstdc++.so.6")
    lib_run = _loaded_libstdcxx()
    lv_build, lv_run = _glibcxx_level(lib_build), _glibcxx_level(lib_run)
    if lv_build > lv_run >= 0:
        problems.append(f"{cxx} links libstdc++ {lib_build} (GLIBCXX_3.4.{lv_build}) but torch runs with "
                        f"{lib_run} (GLIBCXX_3.4.{lv_run}): the extension could call C++ runtime code that "
                        f"does not exist at run time (one symptom: a crash while building an error message)")
    os.environ["CXX"] = cxx
    os.environ["CC"] = _sibling_c_compiler(cxx)
    line = (f"dctqa build: host C++ compiler {cxx} ({family} {version}); nvcc host compiler (-ccbin): "
            f"{cxx if use_cuda else 'n/a (CPU-only build)'}; torch built with {torch_cc}, "
            f"C++11 ABI={int(abi)}; libstdc++ at build GLIBCXX_3.4.{lv_build} ({lib_build}), "
            f"at run time GLIBCXX_3.4.{lv_run} ({lib_run})")
    print(line, flush=True)
    try:  # also kept in build/ (pip -q hides the line; `make build` prints this file)
        os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
        with open(os.path.join(ROOT, "build", "dctqa-toolchain.txt"), "w") as f:
            f.write(line + "\n" + "".join(f"problem: {p}\n" for p in problems))
    except OSError:
        pass
    if problems and not _truthy("DCTQA_ALLOW_TOOLCHAIN_MISMATCH"):
        raise ToolchainError("dctqa build: inconsistent C++ toolchain:\n  - " + "\n  - ".join(problems) +
                             "\n  Fix: set CXX to the compiler whose libstdc++ the Python process loads "
                             "(e.g. CXX=g++ of the system, or prepend that compiler's lib folder to "
                             "LD_LIBRARY_PATH at run time), then rebuild; DCTQA_ALLOW_TOOLCHAIN_MISMATCH=1 "
                             "skips this check at your own risk.")
    return ["-ccbin", cxx] if use_cuda else []


def _torch_cuda_include_dirs() -> list[str]:
    """CUDA headers shipped inside torch's wheel (site-packages/nvidia/cu*/include)."""
    import torch

    site = os.path.dirname(os.path.dirname(torch.__file__))
    return sorted(d for d in glob.glob(os.path.join(site, "nvidia", "cu[0-9]*", "include")) if os.path.isdir(d))


def _report(line: str) -> None:
    """Print a build line and add it to build/dctqa-toolchain.txt (pip hides the print)."""
    print(line, flush=True)
    try:
        with open(os.path.join(ROOT, "build", "dctqa-toolchain.txt"), "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


def _sources(use_cuda: bool) -> list[str]:
    """The extension's sources, relative to the repository root, in a fixed order.

    csrc/<op>/: <op>*.cpp schemas, cpu/ kernels, cuda/ kernels; csrc/common/: what several
    ops share; csrc/module.cpp: the module init. Collected recursively, so new subfolders
    (e.g. csrc/<op>/cpu/x86/) need no change here: a ``.cu`` file, or any file under a
    ``cuda`` folder, is CUDA-only; every other ``.cpp`` is built in both builds.
    """
    found = glob.glob("csrc/**/*.cpp", recursive=True) + glob.glob("csrc/**/*.cu", recursive=True)
    picked = []
    for path in sorted(p.replace(os.sep, "/") for p in found):
        cuda_only = path.endswith(".cu") or "cuda" in path.split("/")[1:-1]
        if use_cuda or not cuda_only:
            picked.append(path)
    return picked


def _extensions():
    if _truthy("DCTQA_NO_EXT"):
        return [], {}
    want_cuda = not _truthy("DCTQA_NO_CUDA")
    cuda_home = _find_cuda_home() if want_cuda else None
    if cuda_home:
        # Must be set before torch.utils.cpp_extension is imported (it reads it once).
        os.environ["CUDA_HOME"] = cuda_home
        if not os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip():
            os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCH_LIST
    import torch
    from torch.utils import cpp_extension as ce

    use_cuda = bool(cuda_home) and torch.version.cuda is not None and ce.CUDA_HOME is not None
    ccbin = _choose_toolchain(use_cuda)
    if use_cuda:
        _report(f"dctqa build: CUDA architectures TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST')}")
    sources = _sources(use_cuda)
    # No -std flag: torch adds the standard its headers need (C++17 or C++20).
    cxx = ["-O3", "-fno-math-errno", "-fopenmp"]
    kwargs = dict(
        name="dctqa._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, "csrc"), os.path.join(ROOT, "third_party")],
        extra_link_args=["-fopenmp"],
    )
    if use_cuda:
        kwargs["include_dirs"] += _torch_cuda_include_dirs()
        kwargs["extra_compile_args"] = {
            "cxx": cxx,
            "nvcc": ccbin + ["-O3", "--use_fast_math", "-lineinfo"],
        }
        ext = ce.CUDAExtension(**kwargs)
    else:
        kwargs["extra_compile_args"] = {"cxx": cxx}
        ext = ce.CppExtension(**kwargs)
    return [ext], {"build_ext": ce.BuildExtension}


ext_modules, cmdclass = _extensions()

# Name, version, dependencies, entry points and packages: pyproject.toml.
setup(ext_modules=ext_modules, cmdclass=cmdclass)
