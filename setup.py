"""Build of the dctqa package and its torch extension ``dctqa._C``.

* CUDAExtension (CPU + CUDA kernels) when a CUDA toolkit is usable, else a CppExtension
  (CPU kernels only). ``DCTQA_NO_CUDA=1`` forces the CPU-only build; ``DCTQA_NO_EXT=1``
  builds no extension at all (the package then runs on its torch fallback).
* Needs torch at build time: ``pip install --no-build-isolation -e .``.
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
    common = sorted(glob.glob("csrc/common/*.cpp")) + ["csrc/module.cpp"]
    ops = ["spectral", "feature", "sample_patches"]
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
        include_dirs=[os.path.join(ROOT, "csrc")],
        extra_link_args=["-fopenmp"],
    )
    if use_cuda:
        kwargs["include_dirs"] += _torch_cuda_include_dirs()
        kwargs["extra_compile_args"] = {
            "cxx": cxx + ["-DDCTQA_WITH_CUDA"],
            "nvcc": ["-O3", "--use_fast_math", "-lineinfo", "-DDCTQA_WITH_CUDA"],
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
