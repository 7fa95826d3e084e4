"""The README's examples run exactly as written from the repository root.

Every fenced ``bash`` or ``python`` block preceded by an ``<!-- example -->`` line is run,
in README order, in a scratch copy of the root's position (a folder whose ``../shared`` is
the shared data folder), with ``.venv/bin`` first on PATH as after ``. .venv/bin/activate``.
Shell blocks run under ``bash -euo pipefail``; Python blocks run in this interpreter, each in
a fresh namespace. Skips with the reason when the shared data folder is absent.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, shared_dir

MARK = "<!-- example -->"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def example_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every block marked as an example, in order."""
    blocks = []
    for part in re.split(rf"^{re.escape(MARK)}[ \t]*$", text, flags=re.M)[1:]:  # the marker on a line of its own
        m = _FENCE.match(part.lstrip("\n"))
        assert m is not None, f"{MARK} must be followed by a fenced block: {part[:80]!r}"
        blocks.append((m.group(1), m.group(2)))
    return blocks


#: The front page's limit (issue 20): what does not fit goes to docs/.
MAX_LINES = 250


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines, at most {MAX_LINES}: move detail to docs/"


def test_marked_blocks_are_shell_or_python_and_cover_the_examples():
    """Score on the command line (plain, and with --metrics), the Python API (Metric and registry;
    functional and torchmetrics forms), serving and scaling: each is a marked, runnable block."""
    blocks = example_blocks((REPO / "README.md").read_text())
    assert [lang for lang, _ in blocks] == ["bash", "bash", "python", "python", "python", "python"]
    code = "\n".join(c for _, c in blocks)
    for needed in ("dctqa encode", "enc/crf35.mp4", "--metrics psnr,ssim", "dctqa.read_frames(", 'backbone="onnx:',
                   "blur.score(dist)", "dctqa.functional", "data_range=1.0", "dctqa.QMetric(", "dctqa.StreamScorer(",
                   "scorer.healthy()", "device=device"):
        assert needed in code, needed


def test_example_block_parser():
    text = (f"x\n{MARK}\n```bash\necho 1\n```\n```python\nnot marked\n```\nthe `{MARK}` marker\n{MARK}\n\n"
            f"```python\nprint(2)\n```\n")
    assert example_blocks(text) == [("bash", "echo 1\n"), ("python", "print(2)\n")]


def test_readme_examples_run_as_written(tmp_path, monkeypatch):
    shared = shared_dir()
    for rel in ("videos/vtest.avi", "models/yolox_nano.onnx"):
        if not (shared / rel).is_file():
            pytest.skip(f"needs {rel} from the shared data folder ({shared / rel} not found; set DCTQA_SHARED)")
    root = tmp_path / "repo"
    root.mkdir()
    (tmp_path / "shared").symlink_to(shared.resolve())
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("DCTQA_SHARED", None)
    monkeypatch.chdir(root)
    for i, (lang, code) in enumerate(example_blocks((REPO / "README.md").read_text())):
        if lang == "bash":
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=root, env=env, capture_output=True,
                                 text=True, timeout=300)
            assert run.returncode == 0, f"README example {i} failed:\n{code}\n{run.stdout}\n{run.stderr}"
        else:
            exec(compile(code, f"README example {i}", "exec"), {"__name__": "__readme__"})
    assert (root / "enc" / "crf35.mp4").is_file() and (root / "log.json").is_file()
    both = (root / "log_psnr_ssim.json").read_text().lower()   # --metrics psnr,ssim: the baselines beside Q
    assert "psnr" in both and "ssim" in both
