"""Build of the dctqa package and its torch extension ``dctqa._C``.

* CUDAExtension (CPU + CUDA kernels) when a CUDA toolkit is usable, else a CppExtension
  (CPU kernels only). ``DCTQA_NO_CUDA=1`` forces the CPU-only build; ``DCTQA_NO_EXT=1``
  builds no extension at all (the package then runs on its torch fallback).
* Needs torch at build time: ``pip install --no-build-isolation -e .``.
* One C++ toolchain: the compiler in ``CXX`` (default ``c++``) builds the host code and is
  nvcc's host compiler (``-ccbin``); it is printed, and the build stops before compiling
  when it would link a newer libstdc++ than the one torch runs with (``_choose_toolchain``).
* torch is required with a lower bound only; the exact pin lives in requirements.txt
  (the GPU machine ships its own torch).
"""
from __future__ import annotations

import glob
import os
import shutil
import sys

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


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
    unless DCTQA_ALLOW_TOOLCHAIN_MISMATCH=1. See README, "Building".
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


def _extensions():
    if _truthy("DCTQA_NO_EXT"):
        return [], {}
    want_cuda = not _truthy("DCTQA_NO_CUDA")
    cuda_home = _find_cuda_home() if want_cuda else None
    if cuda_home:
        # Must be set before torch.utils.cpp_extension is imported (it reads it once).
        os.environ["CUDA_HOME"] = cuda_home
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    import torch
    from torch.utils import cpp_extension as ce

    use_cuda = bool(cuda_home) and torch.version.cuda is not None and ce.CUDA_HOME is not None
    ccbin = _choose_toolchain(use_cuda)
    # csrc/<op>/: <op>*.cpp schemas, cpu/ kernels, cuda/ kernels; csrc/common/: what several ops share.
    common = sorted(glob.glob("csrc/common/*.cpp")) + ["csrc/module.cpp"]
    ops = sorted(os.path.basename(d) for d in glob.glob("csrc/*") if os.path.isdir(d) and os.path.basename(d) != "common")
    sources = list(common)
    for op in ops:
        sources += sorted(glob.glob(f"csrc/{op}/*.cpp")) + sorted(glob.glob(f"csrc/{op}/cpu/*.cpp"))
        if use_cuda:
            sources += sorted(glob.glob(f"csrc/{op}/cuda/*.cpp")) + sorted(glob.glob(f"csrc/{op}/cuda/*.cu"))
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

setup(
    name="dctqa",
    version="0.1.0",
    description="Full-reference image/video quality metric from object-detector features (DCT domain)",
    packages=find_packages(include=["dctqa", "dctqa.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "scipy>=1.10",
        "scikit-image>=0.22",
        "av>=12",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "matplotlib>=3.7",
        "tqdm>=4.60",
    ],
    extras_require={"test": ["pytest>=8", "pytest-benchmark>=4"]},
    entry_points={"console_scripts": ["dctqa=dctqa.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
