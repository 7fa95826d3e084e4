"""The documentation is current and its links resolve.

* ``docs/configuration.md`` is exactly what ``python -m dctqa.configdoc`` writes from
  ``dctqa.settings.ENV`` (and the build-time list agrees with ``setup.py``);
* every relative link (and image) in ``README.md`` and ``docs/**/*.md`` names a file or folder
  of the repository, and a ``#fragment`` names a heading of the page it points to;
* every ``docs/...`` page the code names exists;
* the study report prints the paper's Tables 1 and 2 beside ours, labelled, never mixed in.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dctqa import configdoc, settings
from tests.conftest import REPO

REGENERATE = "run python -m dctqa.configdoc > docs/configuration.md"


def test_configuration_md_is_generated_from_settings_env():
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == configdoc.markdown(), REGENERATE


def test_configdoc_module_prints_the_same_text():
    run = subprocess.run([sys.executable, "-m", "dctqa.configdoc"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout == configdoc.markdown()


def test_every_variable_has_one_row_with_its_default_and_bounds():
    text = configdoc.markdown()
    for name, var in settings.ENV.items():
        rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
        assert len(rows) == 1, name
        assert var.meaning.replace("|", "\\|") in rows[0], name
        if var.kind == "number":
            assert configdoc._number(var.minimum) in rows[0] and configdoc._number(var.maximum) in rows[0], name
    for name, _ in configdoc.BUILD_ENV:
        assert f"| `{name}` |" in text, name


def test_markdown_reads_any_env_table_generically():
    """A record with a field configdoc does not know gets a column of its own; numbers show
    their bounds, flags on/off."""
    @dataclasses.dataclass(frozen=True)
    class Var:
        name: str
        kind: str
        default: str
        meaning: str
        minimum: float = 0
        maximum: float = 0
        read_by: str = ""

    env = {"DCTQA_X": Var("DCTQA_X", "number", "65536", "x | y", 1, 1 << 40, "C++"),
           "DCTQA_Y": Var("DCTQA_Y", "flag", "1", "a switch", read_by="Python")}
    text = configdoc.markdown(env)
    assert "| variable | kind | default | meaning | bounds (numbers) | read by |" in text
    assert "| `DCTQA_X` | number | `65536 (2^16)` | x \\| y | 1 .. 2^40 | C++ |" in text
    assert "| `DCTQA_Y` | flag | `on` | a switch |  | Python |" in text


def test_build_time_variables_are_the_ones_setup_py_reads():
    setup = (REPO / "setup.py").read_text()
    read = set(re.findall(r"""(?:_truthy|environ\.get|getenv)\(\s*["'](DCTQA_[A-Z0-9_]+)["']""", setup))
    listed = {name for name, _ in configdoc.BUILD_ENV}
    assert read, "setup.py reads no DCTQA_* variable any more: update configdoc.BUILD_ENV"
    assert read - set(settings.ENV) == listed, "configdoc.BUILD_ENV must list exactly the DCTQA_* variables setup.py reads"


def _pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


def relative_links(page: Path) -> list[str]:
    """Every link target of ``page`` that is not a URL, outside code blocks."""
    text = _FENCE.sub("", page.read_text())
    return [t for t in _LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_link_parser():
    page = REPO / "README.md"
    assert _slug("Serving many camera streams") == "serving-many-camera-streams"
    assert _slug("`dctqa demo`: example output") == "dctqa-demo-example-output"
    assert "docs/metric.md" in relative_links(page)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve_inside_the_repository(page: Path):
    bad = []
    for target in relative_links(page):
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if REPO.resolve() not in (dest, *dest.parents):
            bad.append(f"{target} (outside the repository)")
        elif not dest.exists():
            bad.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            bad.append(f"{target} (no heading #{fragment})")
    assert bad == [], f"{page.relative_to(REPO)}: broken links {bad}"


def test_docs_pages_named_in_the_code_exist():
    """A ``docs/NAME.md`` named in a docstring, comment or message of the code is a page."""
    sources = [*sorted((REPO / "dctqa").rglob("*.py")), REPO / "setup.py", REPO / "Makefile", REPO / ".importlinter"]
    missing = []
    for src in sources:
        for name in re.findall(r"(?<![\w./-])docs/([\w./-]+\.md)\b", src.read_text()):  # not ../shared/docs/
            if not (REPO / "docs" / name).is_file():
                missing.append(f"{src.relative_to(REPO)}: docs/{name}")
    assert missing == []


def _analysis(primary: str = "dctqa_spectral_yolox_nano") -> SimpleNamespace:
    """A small synthetic study analysis: correlations of psnr, ssim and the primary column on
    Table 1's and Table 2's subsets."""
    rows = []
    for subset, n in (("all", 40), ("crf 35,41,47", 24), ("crf 41,47", 16)):
        for target in ("ap", "ap50"):
            for metric, r in (("psnr", 0.61), ("ssim", 0.52), (primary, -0.79)):
                rows.append({"subset": subset, "target": target, "metric": metric, "n": n,
                             **{k: r for k in ("lcc", "srcc", "krcc")},
                             **{f"{k}_lo": r - 0.1 for k in ("lcc", "srcc", "krcc")},
                             **{f"{k}_hi": r + 0.1 for k in ("lcc", "srcc", "krcc")}})
    return SimpleNamespace(settings=SimpleNamespace(primary=primary, metrics=["psnr", "ssim", primary]),
                           correlations=rows)


def test_study_report_puts_the_papers_numbers_beside_ours():
    from dctqa.study import report

    lines = report._paper_lines(_analysis())
    text = "\n".join(lines)
    header = "| metric | LCC | SRCC | KRCC | paper LCC | paper SRCC | paper KRCC |"
    assert text.count(header) == 6  # 3 subsets x 2 targets
    assert "paper: its Table 1)" in text and "paper: its Table 2, top)" in text and "paper: its Table 2, bottom)" in text
    table1 = lines[lines.index(next(x for x in lines if x.startswith("**Table 1: all (AP, n = 40"))):]
    # ours with intervals, then the paper's as printed (../shared/docs/PAPER-TABLES.md, Table 1)
    assert "| psnr | +0.610 [+0.51, +0.71] | +0.610 [+0.51, +0.71] | +0.610 [+0.51, +0.71] | 0.627 | 0.695 | 0.508 |" in table1
    assert "| ssim | +0.520 [+0.42, +0.62] | +0.520 [+0.42, +0.62] | +0.520 [+0.42, +0.62] | 0.650 | 0.614 | 0.440 |" in table1
    assert any(x.startswith("| dctqa_spectral_yolox_nano | -0.790 [-0.89, -0.69]") and x.endswith(
        "| 0.701 | 0.693 | 0.503 |") for x in table1)
    bottom = text[text.index("crf 41,47 (AP,"):]
    assert "| 0.378 | 0.375 | 0.25 |" in bottom and "| 0.498 | 0.511 | 0.337 |" in bottom  # digits as printed


def test_paper_numbers_cover_tables_1_and_2_and_only_known_rows():
    from dctqa.study import report

    assert set(report.PAPER_NUMBERS) == {subset for _, subset in report.PAPER_SUBSETS}
    for subset, rows in report.PAPER_NUMBERS.items():
        assert set(rows) == set(report.PAPER_ROWS) | {"primary"}, subset
        for values in rows.values():
            assert len(values) == 3 and all(0 <= float(v) <= 1 for v in values)


def test_a_row_the_paper_lacks_gets_empty_paper_cells():
    from dctqa.study import report

    a = _analysis()
    a.settings.metrics.append("blockiness")
    for c in [c for c in a.correlations if c["metric"] == "psnr"]:
        a.correlations.append({**c, "metric": "blockiness"})
    a.settings.metrics.insert(0, "psnr_global")  # not one of the paper's rows: not in its layout
    text = "\n".join(report._paper_lines(a))
    assert "| blockiness |" in text and "| 0.627 | 0.670 | 0.491 |" in text
    assert "psnr_global" not in text
    assert report._paper_cells("crf 41,47", "psnr_global", "dctqa_x") == " |  | "


def _refuse_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def test_committed_json_results_are_strict() -> None:
    """Every JSON file under docs/ parses with a strict parser (no NaN or Infinity)."""
    import json

    files = sorted((REPO / "docs").rglob("*.json"))
    assert files, "docs/results holds JSON results (timings.json at least)"
    for path in files:
        try:
            json.loads(path.read_text(), parse_constant=_refuse_constant)
        except ValueError as e:
            pytest.fail(f"{path.relative_to(REPO)} is not strict JSON: {e}")
