"""Layout rules of the package (issue 8): short functions everywhere.

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
