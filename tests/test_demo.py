"""`dctqa demo`, the README's main job, on a short clip."""
from __future__ import annotations

import json

import numpy as np

from dctqa.demo import choose_backbone, run_demo
from dctqa.progress import using_mode


def test_demo_writes_table_plot_and_log(tmp_path, capsys):
    with using_mode("log"):  # what `dctqa demo` does when stderr is not a terminal
        rows = run_demo(out_dir=tmp_path, frames=8, backbone="pixel", progress=True)
    assert [r["crf"] for r in rows] == [23, 29, 35, 41, 47]
    bitrate = [r["bitrate_kbps"] for r in rows]
    psnr = [r["psnr_db"] for r in rows]
    q = [r["q_mean"] for r in rows]
    assert all(np.diff(bitrate) < 0) and all(np.diff(psnr) < 0)
    assert q[0] > 1.0 and all(np.diff(q) > 0), q
    assert (tmp_path / "q_psnr_vs_crf.png").stat().st_size > 1000
    log = json.loads((tmp_path / "results.json").read_text())
    assert log["backbone"] == "pixel" and len(log["rows"]) == 5
    cap = capsys.readouterr()
    assert "CRF" in cap.out and "PSNR dB" in cap.out and "backbone: pixel" in cap.out
    err = cap.err.splitlines()  # stage lines and one line per variant scored
    assert "demo: encoding 5 H.264 variants (CRF 23, 29, 35, 41, 47)" in err
    assert any(e.startswith("demo: encode: done, 8 frame in ") for e in err)
    assert [e.split(",")[0] for e in err if e.startswith("demo: score: ")] == [
        "demo: score: 20% (1/5 variant)", "demo: score: 40% (2/5 variant)", "demo: score: 60% (3/5 variant)",
        "demo: score: 80% (4/5 variant)", "demo: score: done"]


def test_demo_backbone_choice_follows_what_is_available(tmp_path, monkeypatch, yolox_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no torchvision weights cached there
    monkeypatch.setenv("DCTQA_SHARED", str(yolox_path.parents[1]))
    name, why = choose_backbone()
    assert name == f"onnx:{yolox_path}" and "YOLOX" in why
    monkeypatch.setenv("DCTQA_SHARED", str(tmp_path / "nothing"))
    name, why = choose_backbone()
    assert name == "pixel" and "no detector weights" in why
