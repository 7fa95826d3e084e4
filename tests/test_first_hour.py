"""Issue 11, a new user's first hour: progress in every mode, `study --quick`, the offline
weights error (no misleading download line), `dctqa.read_frames`."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest

from dctqa.cli import build_parser, main
from dctqa.progress import progress, resolve_mode, stage, using_mode
from tests.helpers import make_video


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_modes_override_the_terminal_check_and_none_silences_everything():
    assert resolve_mode(True, io.StringIO()) == "log" and resolve_mode(True, Tty()) == "bar"
    for mode, stream, want in (("log", Tty(), "log"), ("bar", io.StringIO(), "bar"), ("none", Tty(), "none")):
        with using_mode(mode):
            assert resolve_mode(True, stream) == want
            assert resolve_mode(False, stream) == "none"  # enabled=False (quiet) always wins
    assert resolve_mode(True, io.StringIO()) == "log"  # restored
    with pytest.raises(ValueError, match="progress mode"):
        with using_mode("loud"):
            pass


def test_stage_lines_in_log_mode_only_when_not_quiet():
    out = io.StringIO()
    with using_mode("log"):
        stage("study: stage 1/4 encode", stream=out)
        with progress(2, "encode", unit="frame", stream=out) as bar:
            bar.update(2)
    with using_mode("none"):
        stage("hidden", stream=out)
        with progress(2, "hidden", stream=out) as bar:
            bar.update(2)
    lines = out.getvalue().splitlines()
    assert lines[0] == "study: stage 1/4 encode" and lines[1].startswith("encode: done, 2 frame in ")
    assert len(lines) == 2


@pytest.fixture(scope="module")
def small_video(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    rng = np.random.default_rng(0)
    make_video(path, rng.integers(0, 255, (6, 48, 64, 3), dtype=np.uint8), preset="ultrafast", crf=10)
    return path


def test_encode_reports_frames_and_every_variant_in_log_mode(small_video, tmp_path, capsys):
    rc = main(["encode", str(small_video), "--out", str(tmp_path / "o"), "--crf", "35,41", "--cap-bpp", "0.1",
               "--preset", "ultrafast", "--progress", "log"])
    assert rc == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"encode: 4 variants of {small_video} (6 frames")
    assert any(e.startswith("encode: done, 6 frame in ") for e in err)
    checks = [e.split(",")[0] for e in err if e.startswith("encode: check: ")]
    assert checks == ["encode: check: 25% (1/4 variant)", "encode: check: 50% (2/4 variant)",
                      "encode: check: 75% (3/4 variant)", "encode: check: done"]


def test_encode_quiet_prints_no_progress(small_video, tmp_path, capsys):
    assert main(["encode", str(small_video), "--out", str(tmp_path / "o"), "--crf", "41", "--cap-bpp", "",
                 "--preset", "ultrafast", "--quiet", "--progress", "log"]) == 0
    assert capsys.readouterr().err == ""


def test_study_quick_is_a_preset_of_documented_options_that_explicit_options_override():
    from dctqa.study.cli import QUICK, _apply_quick

    args = build_parser().parse_args(["study", "v.mp4", "--out", "o", "--quick", "--window", "30"])
    _apply_quick(args)
    assert args.window == 30  # given explicitly: kept
    assert (args.max_frames, args.crf, args.cap_bpp, args.domain, args.baselines, args.n_boot) == (
        150, (35, 41, 47), "", ["spectral"], "psnr,ssim", 200)
    assert (args.frame_stride, args.metric_stride, args.sensitivity_gt) == (2, 4, "")
    odd = build_parser().parse_args(["study", "v.mp4", "--out", "o", "--quick", "--frame-stride", "3"])
    _apply_quick(odd)
    assert odd.metric_stride == 6
    plain = build_parser().parse_args(["study", "v.mp4", "--out", "o"])
    assert all(getattr(plain, k) != v for k, v in QUICK.items())  # without --quick nothing changes
    assert plain.metric_stride is None
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["study"].format_help().split())
    assert "--quick" in help_text and "--max-frames 150" in help_text


def _tiny_study(tmp_path, **kw):
    from dctqa.study import StudyConfig

    video = tmp_path / "v.mp4"
    video.write_bytes(b"not decoded: every stage that would read it is replaced")
    cfg = StudyConfig(videos=[video], out=tmp_path / "out", backbones=[], baselines=(), progress=True,
                      detector=object(), n_boot=200, sensitivity_gt=(0.3, 0.5), sensitivity_pred=(0.0,), **kw)
    return cfg, video


def test_study_encode_stage_names_itself_and_how_far(tmp_path, monkeypatch, capsys):
    """The pipeline's encode stage prints its stage line and reports through dctqa.progress."""
    import dctqa.io
    from dctqa.study import pipeline

    cfg, video = _tiny_study(tmp_path)

    def fake_sweep(src, out, settings, progress=None, **kw):
        progress(4)
        return []

    monkeypatch.setattr(dctqa.io, "probe", lambda path: SimpleNamespace(frames=4))
    monkeypatch.setattr(pipeline, "encode_sweep", fake_sweep)
    for later in ("score_stage", "detect_ap_stage", "tables_and_report_stage"):  # the stages after encode: none
        monkeypatch.setattr(pipeline, later, lambda run: None)
    with using_mode("log"):
        pipeline.run_study(cfg)
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "study: stage 1/4 encode v.mp4 (4 frames, 1 video(s) in the study)"
    assert any(e.startswith("study: encode v.mp4: done, ") and "frame" in e for e in err), err


def test_study_stages_name_themselves_and_how_far(tmp_path, monkeypatch, capsys):
    """run_study's named stages print "study: stage i/4 ..." and one progress per stage, the
    tables-and-report line last (the stages that read videos are replaced)."""
    import numpy as np

    from dctqa.study import pipeline

    cfg, video = _tiny_study(tmp_path)
    vs = [SimpleNamespace(name=f"crf{c}", path=video) for c in (23, 35, 47)]

    def fake_encode(run):
        run.variants, run.refs, run.hashes = {"v": vs}, {"v": video}, {"v": "0"}

    def fake_report(run):
        run.result = "result"

    monkeypatch.setattr(pipeline, "encode_stage", fake_encode)
    monkeypatch.setattr(pipeline, "score_pair", lambda *args: ({"frame_indices": np.arange(2)}, None))
    monkeypatch.setattr(pipeline, "_ap_stage", lambda *a: ({"windows": [], "detect_s": 0.0, "ap_s": 0.0},
                                                           {"cached": False}))
    monkeypatch.setattr(pipeline, "tables_stage", lambda run: None)
    monkeypatch.setattr(pipeline, "report_stage", fake_report)
    with using_mode("log"):
        assert pipeline.run_study(cfg) == "result"
    err = capsys.readouterr().err.splitlines()
    assert "study: stage 2/4 score every metric on 3 variants" in err
    assert "study: stage 3/4 detect and AP per window (3 variants and 1 reference(s))" in err
    assert err[-1] == ("study: stage 4/4 correlations (200 bootstrap resamples), threshold sensitivity "
                       "(2 AP tables), tables and report")
    assert err.count(err[-1]) == 1
    for desc, unit in (("study: score", "variant"), ("study: detect+AP", "step")):
        assert any(e.startswith(f"{desc}: done, ") and unit in e for e in err), (desc, err)


def test_offline_default_backbone_says_how_to_pass_onnx_without_a_download_line(tmp_path, monkeypatch, capfd):
    import dctqa
    from dctqa import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # empty cache
    monkeypatch.setattr(weights, "can_reach", lambda url, timeout_s=3.0: False)
    with pytest.raises(dctqa.WeightsError) as info:
        dctqa.create_metric("dctqa")
    text = str(info.value)
    assert 'create_metric("dctqa", backbone="onnx:' in text and "--backbone onnx:" in text
    assert "--weights FILE" in text and "no network" in text
    assert "Downloading" not in capfd.readouterr().err


def test_can_reach_is_false_for_a_closed_port_and_a_bad_url():
    from dctqa.weights import can_reach

    assert can_reach("http://127.0.0.1:1/x", timeout_s=2) is False
    assert can_reach("not a url") is False


def test_read_frames_at_the_package_root(small_video):
    import dctqa
    from dctqa import io as dio

    frames = dctqa.read_frames(small_video, max_frames=4)
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    assert dctqa.read_frames is dio.read_frames and "read_frames" in dctqa.__all__
