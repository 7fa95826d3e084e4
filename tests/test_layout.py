"""Layout rules of the package (issue 8): short functions everywhere; (issue 20) no import
circle, TYPE_CHECKING and function-local imports included, and no private name across a wing.

Every function or method in ``dctqa/`` is shorter than :data:`MAX_LINES` lines (from its
``def`` line to its last line), with no exception.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dctqa"
MAX_LINES = 80


def function_lengths(root: Path = PACKAGE) -> dict[str, int]:
    """``"dctqa/<path>:<Class.method or function>"`` -> lines from ``def`` to the last line."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, rel: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                out[f"{rel}:{name}"] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.", rel)
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", rel)
            else:
                visit(child, prefix, rel)

    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        visit(ast.parse(path.read_text(), filename=str(path)), "", rel)
    return out


def test_the_measure_is_real():
    lengths = function_lengths()
    assert lengths["dctqa/metric.py:Metric.score_video"] > 20
    assert lengths["dctqa/registry.py:create_metric"] < lengths["dctqa/metric.py:Metric.score_video"]
    assert len(lengths) > 200


def test_no_function_is_80_lines_or_longer():
    long = {k: n for k, n in function_lengths().items() if n >= MAX_LINES}
    assert long == {}, f"functions of {MAX_LINES}+ lines (split them): {long}"


# ----------------------------------------------------------------------------- imports
# What .importlinter cannot check (issue 20): it leaves out `if TYPE_CHECKING:` imports
# (`exclude_type_checking_imports`), and it sees modules, not the names imported from them.

#: The wings: packages the core never imports (.importlinter); everything else is the core.
WINGS = ("study", "nr", "scale", "ladder")


def import_circles(package: str) -> dict[str, set[tuple[str, str]]]:
    """Package -> the imports that would break its circles between sibling modules, for
    ``package`` and every package inside it, counting every import grimp finds: at the top of
    a module, inside a function, and under ``if TYPE_CHECKING:``."""
    import grimp

    graph = grimp.build_graph(package, exclude_type_checking_imports=False, cache_dir=None)
    out: dict[str, set[tuple[str, str]]] = {}
    todo = [package]
    while todo:
        pkg = todo.pop()
        children = graph.find_children(pkg)
        todo.extend(children)
        if len(children) >= 2:
            breakers = graph.nominate_cycle_breakers(pkg)
            if breakers:
                out[pkg] = set(breakers)
    return out


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in WINGS else "core"


def private_cross_wing_imports(root: Path = PACKAGE) -> list[str]:
    """``"importer: from module import _name"`` for every ``from ... import _name`` (anywhere in
    a module: top level, functions, TYPE_CHECKING blocks; relative imports resolved) whose
    module is in another wing than the importer (study <-> nr, or a wing <-> the core).
    Dunder names (``__version__``) are public."""
    found = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[:-1]  # of a module: its package; of an __init__.py: the package itself
        importer = ".".join(parts if parts[-1] != "__init__" else package)
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if not module.startswith(root.name) or _wing(module) == _wing(importer):
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not (alias.name.startswith("__") and alias.name.endswith("__")):
                    found.append(f"{importer}: from {module} import {alias.name}")
    return found


def _write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_the_import_checks_are_real(tmp_path, monkeypatch):
    """Both checks find what they look for: a circle closed only by a TYPE_CHECKING import and a
    function-local one, and a private name imported across wings (relative and absolute)."""
    _write_package(tmp_path, {
        "circ/__init__.py": "",
        "circ/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n",
        "circ/b.py": "def f():\n    from .a import A\n",
        "circ/c.py": "from . import a\n",
        "dctqa/__init__.py": "", "dctqa/nr/__init__.py": "", "dctqa/study/__init__.py": "",
        "dctqa/study/x.py": "_y = 1\nz = 2\n",
        "dctqa/nr/d.py": "def f():\n    from ..study.x import _y\n    from ..study.x import z\n",
        "dctqa/nr/e.py": "from dctqa.study.x import _y\nfrom . import __name__ as n\n",
        "dctqa/study/f.py": "from .x import _y\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    circles = import_circles("circ")
    assert set(circles) == {"circ"} and circles["circ"] <= {("circ.a", "circ.b"), ("circ.b", "circ.a")}
    assert private_cross_wing_imports(tmp_path / "dctqa") == [
        "dctqa.nr.d: from dctqa.study.x import _y", "dctqa.nr.e: from dctqa.study.x import _y"]


def test_no_import_circle_in_the_house():
    """No circle between the modules of any package of dctqa, TYPE_CHECKING and function-local
    imports included (a circle hidden that way is still a circle: issue 20's nr/model.py <->
    nr/predict.py was one)."""
    assert import_circles("dctqa") == {}


def test_no_private_name_crosses_a_wing():
    """No ``from <another wing> import _name``: a wing uses the other's (and the core's) public
    names only; what it needs is made public where it lives (e.g. dctqa.study.scoring)."""
    assert private_cross_wing_imports() == []
