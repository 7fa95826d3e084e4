"""Packaging (issue 20): the sdist carries every source the extension needs, the version is
written once, and pyproject.toml's metadata (Python range, extras, licence, dependencies)
matches what the project imports, tests and ships.

The sdist is built once per session from a copy of the tree (the tree's own build/ and
egg-info stay untouched) with ``DCTQA_NO_EXT=1`` (an sdist compiles nothing) and with an
importable ``torch`` that raises: building the metadata must never import torch, which
holds only while setuptools reads ``dctqa.__version__`` from the file's syntax tree.
A few seconds in all.
"""
from __future__ import annotations

import ast
import email.parser
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
#: The extras agreed for issue 20 (COMMON.md / OWNERS.md): `pip install "dctqa[...]"`.
EXTRAS = {"study", "nr", "ray", "test", "torchmetrics"}
#: Folders of a working tree that are never sources (outputs, caches, environments).
_NOT_SOURCE = {".git", ".venv", "build", "dist", "__pycache__", ".pytest_cache", ".benchmarks", ".hypothesis",
               ".grimp_cache", ".import_linter_cache", "demo_out", "out", "study_out", ".whl"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in _NOT_SOURCE or n.endswith((".egg-info", ".so", ".pyc"))}


def _files_under(sub: str) -> list[str]:
    """Every file under ROOT/sub, as a path relative to ROOT with '/' separators."""
    out = []
    for folder, dirs, files in os.walk(ROOT / sub):
        dirs[:] = [d for d in dirs if not _ignore(folder, [d])]
        out += [Path(folder, f).relative_to(ROOT).as_posix() for f in files if not _ignore(folder, [f])]
    return sorted(out)


def _version() -> str:
    """``__version__`` of dctqa/__init__.py, read as setuptools reads it: a module-level literal."""
    tree = ast.parse((ROOT / "dctqa" / "__init__.py").read_text())
    found = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == "__version__" for t in n.targets)]
    assert len(found) == 1 and isinstance(found[0], str), "dctqa/__init__.py must assign __version__ one str literal"
    return found[0]


#: The shipped default no-reference model and its record (package data, dctqa/nr/default.py).
MODEL_FILES = ["dctqa/nr/models/nr-default.pt", "dctqa/nr/models/nr-default.json"]


def _build(tmp_path_factory, kind: str) -> Path:
    """The archive ``python -m build --<kind>`` makes (``sdist`` or ``wheel``; no extension:
    DCTQA_NO_EXT=1, torch not importable) from a copy of the tree, in a fresh folder."""
    pytest.importorskip("build", reason=f"the {kind} test needs `build` (in the [test] extra)")
    tmp = tmp_path_factory.mktemp(kind)
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore)
    (tmp / "blocker" / "torch").mkdir(parents=True)
    (tmp / "blocker" / "torch" / "__init__.py").write_text(
        f"raise ImportError('torch imported while building the {kind}')\n")
    env = dict(os.environ, DCTQA_NO_EXT="1", PYTHONPATH=str(tmp / "blocker"))
    cmd = [sys.executable, "-m", "build", f"--{kind}", "--no-isolation", "--skip-dependency-check",
           "--outdir", str(tmp / "dist"), str(src)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{kind} build failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    (archive,) = (tmp / "dist").glob("*.whl" if kind == "wheel" else "*.tar.gz")
    return archive


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> list[str]:
    """Member paths of a wheel built from a copy of the tree (:func:`_build`)."""
    import zipfile

    with zipfile.ZipFile(_build(tmp_path_factory, "wheel")) as z:
        return z.namelist()


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> tuple[list[str], email.message.Message]:
    """(member paths relative to the sdist's top folder, its PKG-INFO)."""
    archive = _build(tmp_path_factory, "sdist")
    with tarfile.open(archive) as tar:
        top = f"dctqa-{_version()}/"
        names = [m.name[len(top):] for m in tar.getmembers() if m.isfile()]
        assert all(m.name.startswith(top.rstrip("/")) for m in tar.getmembers()), "sdist top folder"
        info = email.parser.Parser().parsestr(tar.extractfile(top + "PKG-INFO").read().decode())
    return names, info


def test_sdist_has_every_source_file(sdist) -> None:
    names, _ = sdist
    needed = _files_under("csrc") + _files_under("third_party")
    assert any(n.endswith((".h", ".cuh", ".inc")) for n in needed) and any(n.endswith(".cu") for n in needed)
    missing = sorted(set(needed) - set(names))
    assert not missing, f"the sdist lacks {missing} (MANIFEST.in)"
    for f in ["LICENSE", "README.md", "pyproject.toml", "setup.py", *PROJECT["license-files"]]:
        assert f in names, f
    junk = [n for n in names if n.endswith((".so", ".o", ".pyc")) or "__pycache__" in n or n.startswith(".venv")]
    assert not junk, junk


def test_default_model_files_are_packaged(sdist, wheel) -> None:
    """The default no-reference model and its record travel in the sdist (MANIFEST.in) and
    in the wheel (package-data)."""
    names, _ = sdist
    assert set(MODEL_FILES) <= set(names), sorted(set(MODEL_FILES) - set(names))
    assert set(MODEL_FILES) <= set(wheel), sorted(set(MODEL_FILES) - set(wheel))
    assert "dctqa/nr/default.py" in wheel


def test_sdist_metadata(sdist) -> None:
    _, info = sdist
    assert info["Name"] == "dctqa" and info["Version"] == _version()
    assert info["Requires-Python"] == PROJECT["requires-python"]
    assert info["License-Expression"] == PROJECT["license"]
    assert set(info.get_all("License-File")) == set(PROJECT["license-files"])
    assert set(info.get_all("Provides-Extra")) == EXTRAS
    requires = info.get_all("Requires-Dist")
    assert any(r.startswith("torchvision") and "extra" not in r for r in requires)
    assert any(r.startswith("faster-coco-eval") and 'extra == "study"' in r for r in requires)


def test_version_is_written_once() -> None:
    """The version literal appears in dctqa/__init__.py only; setup.py passes no metadata."""
    version = _version()
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*", version), version
    pattern = re.compile(r"(?<![\w.=<>~!])" + re.escape(version) + r"(?![\w.])")
    suffixes = (".py", ".toml", ".cfg", ".in", ".txt", ".h", ".cpp", ".cu", ".cuh", ".inc")
    files = [f for f in [*_files_under("dctqa"), *_files_under("csrc"), *_files_under(".ci")] if f.endswith(suffixes)]
    files += [f for f in os.listdir(ROOT) if (ROOT / f).is_file() and (f.endswith(suffixes) or f == "Makefile")]
    holders = sorted(f for f in set(files) if pattern.search((ROOT / f).read_text(errors="replace")))
    assert holders == ["dctqa/__init__.py"], f"version {version} written in {holders}"
    assert PROJECT["dynamic"] == ["version"] and "version" not in PROJECT
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dctqa.__version__"}
    calls = [n for n in ast.walk(ast.parse((ROOT / "setup.py").read_text()))
             if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup"]
    assert len(calls) == 1 and {k.arg for k in calls[0].keywords} == {"ext_modules", "cmdclass"}


def test_python_range_and_classifiers() -> None:
    from packaging.specifiers import SpecifierSet
    from trove_classifiers import classifiers as known

    spec = SpecifierSet(PROJECT["requires-python"])
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert here in spec, f"this interpreter ({here}) is outside requires-python {spec}"
    # What is tested: CI runs 3.11, the GPU machine 3.12; 3.10 cannot install the [test] pins.
    assert "3.11" in spec and "3.12" in spec and "3.10" not in spec
    listed = [c.rsplit(" :: ", 1)[1] for c in PROJECT["classifiers"] if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed and all(v in spec for v in listed) and min(listed, key=lambda v: int(v.split(".")[1])) == "3.11"
    unknown = [c for c in PROJECT["classifiers"] if c not in known]
    assert not unknown, f"not trove classifiers: {unknown}"
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")], "PEP 639: licence only in `license`"


def test_licence_files() -> None:
    assert "Apache-2.0" in PROJECT["license"] and PROJECT["authors"] == [{"name": "dctqa developers"}]
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "Copyright 2026 dctqa developers" in text
    for f in PROJECT["license-files"]:
        assert (ROOT / f).is_file(), f
    header = (ROOT / "third_party" / "pocketfft" / "pocketfft_hdronly.h").read_text()
    notice = (ROOT / "third_party" / "pocketfft" / "NOTICE").read_text()
    assert header[header.index("This file is part of pocketfft."):header.index("*/")].strip() in notice


def _requirement_names(reqs: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    return {re.sub(r"[-_.]+", "-", Requirement(r).name).lower() for r in reqs}


def _third_party_imports(path: Path) -> dict[str, bool]:
    """{top-level module: imported at module level} for the non-stdlib, non-dctqa imports."""
    tree = ast.parse(path.read_text())
    top_level = {id(n) for n in tree.body}
    found: dict[str, bool] = {}
    for n in ast.walk(tree):
        mods = [a.name for a in n.names] if isinstance(n, ast.Import) else \
            [n.module] if isinstance(n, ast.ImportFrom) and n.module and not n.level else []
        for m in (m.split(".")[0] for m in mods):
            if m not in sys.stdlib_module_names and m != "dctqa":
                found[m] = found.get(m, False) or id(n) in top_level
    return found


def test_every_import_is_declared() -> None:
    """Each third-party module dctqa imports comes from a declared distribution: module-level
    imports of the core from [project] dependencies, every other import from an extra."""
    dists = importlib.metadata.packages_distributions()
    core = _requirement_names(PROJECT["dependencies"])
    extras = {k: _requirement_names(v) for k, v in PROJECT["optional-dependencies"].items()}
    anywhere = core.union(*extras.values())
    problems = []
    for f in _files_under("dctqa"):
        if not f.endswith(".py"):
            continue
        wing = "torchmetrics" if f == "dctqa/torchmetric.py" else f.split("/")[1] if f.count("/") > 1 else None
        for mod, at_top in _third_party_imports(ROOT / f).items():
            names = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(mod, [mod])}
            allowed = core | extras.get(wing, set()) if at_top else anywhere
            if not names & allowed:
                problems.append(f"{f}: {mod} ({'module level' if at_top else 'in a function'}) from {sorted(names)}")
    assert not problems, "undeclared imports:\n" + "\n".join(problems)
    assert {"torchvision", "torch", "numpy"} <= core and "faster-coco-eval" in extras["study"]


def test_extras_and_entry_point() -> None:
    opt = PROJECT["optional-dependencies"]
    assert set(opt) == EXTRAS
    assert opt["ray"] == ["ray[data]==2.60.0", "pyarrow"]  # pyarrow: score-many's frames.parquet
    assert "torchmetrics" in _requirement_names(opt["torchmetrics"])
    assert {"pytest", "pytest-benchmark", "hypothesis", "import-linter", "build", "trove-classifiers"} <= \
        _requirement_names(opt["test"])
    assert "hypothesis==6.170.17" in opt["test"] and "import-linter==2.17" in opt["test"]
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"
    assert "torch" in _requirement_names(PYPROJECT["build-system"]["requires"])
    assert PROJECT["scripts"] == {"dctqa": "dctqa.cli:main"}
    cli = ast.parse((ROOT / "dctqa" / "cli.py").read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in cli.body)
