"""Real libx264 round trips through dctqa.study.codec."""
from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from dctqa import baselines
from dctqa.study.codec import (MANIFEST, EncodeSettings, cap_kbps, count_frames, encode_sweep, plan_variants,
                         read_manifest)
from dctqa.errors import InputError, VideoError
from dctqa.io import read_frames


def write_clip(path, frames: np.ndarray, fps: int = 10, codec: str = "ffv1") -> None:
    """Write ``N x H x W x 3`` uint8 RGB frames losslessly (FFV1 in Matroska)."""
    with av.open(str(path), "w", format="matroska") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def synthetic_frames(n: int = 24, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Moving textured squares over a noisy gradient: enough detail for CRF to matter."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255.0 / w, yy * 255.0 / h, np.full((h, w), 128.0)], axis=-1)
    texture = rng.normal(0, 20, (h, w, 3))
    out = []
    for i in range(n):
        f = base + texture
        x0, y0 = (4 + 3 * i) % (w - 24), (10 + 2 * i) % (h - 24)
        f[y0:y0 + 24, x0:x0 + 24] = rng.integers(0, 256, (24, 24, 3))
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(out)


@pytest.fixture(scope="module")
def synth_clip(tmp_path_factory):
    p = tmp_path_factory.mktemp("clip") / "synth.mkv"
    write_clip(p, synthetic_frames())
    return p


def test_plan_names_and_caps():
    s = EncodeSettings(crfs=(23, 47), cap_bpp=(0.01, 0.02))
    plans = plan_variants(s, 768, 576, 10.0)
    assert [p.name for p in plans] == ["crf23", "crf23_cap44k", "crf23_cap88k", "crf47", "crf47_cap44k",
                                       "crf47_cap88k"]
    assert plans[1].maxrate_kbps == pytest.approx(0.01 * 768 * 576 * 10 / 1000)
    assert cap_kbps(640, 360, 30.0, 0.02) == pytest.approx(138.24)
    s2 = EncodeSettings(crfs=(30,), caps_kbps=(50, 100), include_uncapped=False)
    assert [p.maxrate_kbps for p in plan_variants(s2, 64, 64, 10.0)] == [50.0, 100.0]


@pytest.mark.parametrize("kwargs", [dict(crfs=(52,)), dict(crfs=()), dict(preset="warp"), dict(cap_bpp=(0,)),
                                    dict(gop=0), dict(bufsize_s=0), dict(max_frames=0)])
def test_bad_settings(kwargs):
    with pytest.raises(InputError):
        EncodeSettings(**kwargs)


def test_synthetic_sweep(synth_clip, tmp_path):
    src = read_frames(synth_clip)
    s = EncodeSettings(crfs=(23, 41), caps_kbps=(20.0,), preset="ultrafast", gop=12)
    variants = encode_sweep(synth_clip, tmp_path / "out", s)
    by = {v.name: v for v in variants}
    assert set(by) == {"crf23", "crf23_cap20k", "crf41", "crf41_cap20k"}
    psnr = {}
    for v in variants:
        assert v.path.is_file() and v.frames == len(src)
        dec = read_frames(v.path)
        assert dec.shape == src.shape
        psnr[v.name] = baselines.global_psnr([baselines.mse_np(a, b) for a, b in zip(src, dec)])
        # the H.264 stream is really yuv420p at the source's rate
        with av.open(str(v.path)) as c:
            st = c.streams.video[0]
            assert st.codec_context.name == "h264" and st.format.name == "yuv420p"
            assert Fraction(st.average_rate) == 10
    assert by["crf41"].bitrate_kbps < by["crf23"].bitrate_kbps
    assert psnr["crf41"] < psnr["crf23"]
    assert by["crf23_cap20k"].bitrate_kbps < by["crf23"].bitrate_kbps
    assert by["crf23_cap20k"].maxrate_kbps == 20.0 and by["crf23"].maxrate_kbps is None
    # bitrate = packet bits / duration, checked independently by demuxing
    with av.open(str(by["crf23"].path)) as c:
        nbytes = sum(p.size for p in c.demux(c.streams.video[0]))
    assert by["crf23"].bitrate_kbps == pytest.approx(nbytes * 8 / (len(src) / 10) / 1000)
    # the manifest round-trips and no temporary file is left behind
    assert read_manifest(tmp_path / "out" / MANIFEST) == variants
    assert json.loads((tmp_path / "out" / MANIFEST).read_text())["settings"]["preset"] == "ultrafast"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_frame_order_is_kept(synth_clip, tmp_path):
    """Each decoded frame is closest to the source frame with the same index."""
    src = read_frames(synth_clip).astype(np.float64)
    (v,) = encode_sweep(synth_clip, tmp_path, EncodeSettings(crfs=(23,), cap_bpp=(), preset="ultrafast"))
    dec = read_frames(v.path).astype(np.float64)
    err = ((dec[:, None] - src[None]) ** 2).mean(axis=(2, 3, 4))
    assert np.array_equal(err.argmin(axis=1), np.arange(len(src)))


def test_count_frames_detects_gaps(tmp_path):
    """A stream with a missing timestamp (a dropped frame) is reported as not gap-free."""
    frames = synthetic_frames(n=6, h=32, w=32)
    p = tmp_path / "gap.mkv"
    with av.open(str(p), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width = s.height = 32
        s.pix_fmt = "yuv444p"
        for pts in (0, 1, 2, 4, 5):  # frame 3 dropped
            vf = av.VideoFrame.from_ndarray(frames[pts], format="rgb24")
            vf.pts = pts
            for pk in s.encode(vf):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    n, gap_free = count_frames(p)
    assert n == 5 and not gap_free
    write_clip(tmp_path / "ok.mkv", frames)
    assert count_frames(tmp_path / "ok.mkv") == (6, True)


def test_vtest_round_trip(vtest_path, tmp_path):
    s = EncodeSettings(crfs=(23, 35, 47), cap_bpp=(0.01,), preset="veryfast", max_frames=25)
    variants = encode_sweep(vtest_path, tmp_path, s)
    by = {v.name: v for v in variants}
    src = read_frames(vtest_path, max_frames=25)
    psnr = {}
    for v in variants:
        assert v.frames == 25
        dec = read_frames(v.path)
        assert dec.shape == src.shape
        psnr[v.name] = baselines.global_psnr([baselines.mse_np(a, b) for a, b in zip(src, dec)])
    rates = [by[f"crf{c}"].bitrate_kbps for c in (23, 35, 47)]
    assert rates[0] > rates[1] > rates[2]
    assert psnr["crf23"] > psnr["crf35"] > psnr["crf47"]
    capped = by["crf23_cap44k"]
    assert capped.maxrate_kbps == pytest.approx(0.01 * 768 * 576 * 10 / 1000)
    assert capped.bitrate_kbps < 0.5 * by["crf23"].bitrate_kbps
    assert psnr["crf23_cap44k"] < psnr["crf23"]


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        encode_sweep(tmp_path / "nope.mp4", tmp_path / "out")


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError):
        encode_sweep(p, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_zero_frames(tmp_path):
    p = tmp_path / "empty.mkv"
    with av.open(str(p), "w", format="matroska") as c:
        s = c.add_stream("ffv1", rate=10)
        s.width = s.height = 32
        s.pix_fmt = "yuv444p"
        c.start_encoding()  # header only, no frame
    assert p.stat().st_size > 0
    with pytest.raises(VideoError):
        encode_sweep(p, tmp_path / "out", EncodeSettings(crfs=(30,), cap_bpp=()))
    assert not list((tmp_path / "out").glob("*.mp4"))
    assert not list((tmp_path / "out").glob(".*"))


def test_odd_size_is_refused(tmp_path):
    p = tmp_path / "odd.mkv"
    write_clip(p, synthetic_frames(n=3, h=33, w=40))
    with pytest.raises(InputError, match="even width"):
        encode_sweep(p, tmp_path / "out")


def test_single_thread_is_reproducible(synth_clip, tmp_path):
    s = EncodeSettings(crfs=(30,), caps_kbps=(15.0,), preset="ultrafast", threads=1)
    a = encode_sweep(synth_clip, tmp_path / "a", s)
    b = encode_sweep(synth_clip, tmp_path / "b", s)
    for va, vb in zip(a, b):
        assert va.path.read_bytes() == vb.path.read_bytes()


def test_transcode_live_pairs_each_frame_with_its_compressed_version(vtest_path):
    from dctqa.study.codec import transcode_live
    from dctqa.io import iter_frames

    src = read_frames(vtest_path, max_frames=6)
    got = list(transcode_live(iter_frames(vtest_path, max_frames=6), crf=40))
    assert len(got) == 6
    for s, (ref, dist) in zip(src, got):
        assert np.array_equal(ref, s) and dist.shape == s.shape and dist.dtype == np.uint8
        err = np.abs(dist.astype(int) - s.astype(int)).mean()
        assert 0.5 < err < 20  # compressed, but the same picture
    with pytest.raises(InputError, match="even size"):
        list(transcode_live([np.zeros((5, 8, 3), np.uint8)]))
    with pytest.raises(InputError, match="crf"):
        list(transcode_live([np.zeros((4, 8, 3), np.uint8)], crf=60))
