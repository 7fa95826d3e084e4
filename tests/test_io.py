"""Reading frames: real files, strides, resizing, and every kind of bad file."""
from __future__ import annotations

import numpy as np
import pytest

from dctqa import io
from dctqa.errors import InputError, VideoError
from tests.helpers import make_video


def test_probe_and_read_real_video(vtest_path):
    info = io.probe(vtest_path)
    assert (info.width, info.height, info.frames, info.fps) == (768, 576, 795, 10.0)
    frames = io.read_frames(vtest_path, max_frames=6)
    assert frames.shape == (6, 576, 768, 3) and frames.dtype == np.uint8
    strided = io.read_frames(vtest_path, stride=2, max_frames=6)
    np.testing.assert_array_equal(strided, frames[::2])
    small = next(io.iter_frames(vtest_path, size=(288, 384)))
    assert small.shape == (288, 384, 3)


def test_png_roundtrip_is_exact(tmp_path, rng):
    from PIL import Image

    a = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    info = io.probe(tmp_path / "a.png")
    assert info.is_image and info.frames == 1
    np.testing.assert_array_equal(io.read_frames(tmp_path / "a.png")[0], a)


def test_grayscale_and_alpha_files_are_refused(tmp_path, rng):
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "g.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="grayscale"):
        next(io.iter_frames(tmp_path / "g.png"))
    with pytest.raises(InputError, match="alpha"):
        next(io.iter_frames(tmp_path / "a.png"))


def test_unreadable_files(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        io.probe(tmp_path / "missing.mp4")
    with pytest.raises(VideoError, match="directory"):
        io.probe(tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(VideoError, match="cannot read"):
        io.probe(junk)
    with pytest.raises(InputError, match="stride"):
        next(io.iter_frames(junk, stride=0))


@pytest.mark.parametrize("ext", ["mkv", "mp4"])
def test_zero_length_video(tmp_path, ext):
    """A container with a video stream but no frame, and a zero-byte file."""
    import av

    path = tmp_path / f"empty.{ext}"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 16, 16, "yuv420p"
        out.start_encoding()
    assert path.stat().st_size > 0
    with pytest.raises(VideoError, match="no decodable frame|no video stream|cannot read"):
        list(io.iter_frames(path))
    zero = tmp_path / f"zero.{ext}"
    zero.write_bytes(b"")
    with pytest.raises(VideoError, match="cannot read"):
        list(io.iter_frames(zero))


def test_truncated_video(tmp_path, rng):
    """A file cut in the middle either decodes fewer frames or raises VideoError, never crashes."""
    path = tmp_path / "v.mp4"
    make_video(path, rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8), crf=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError):
        list(io.iter_frames(cut))


def _clip(path, rng, n, size=(16, 24)):
    frames = rng.integers(0, 256, (n, *size, 3), dtype=np.uint8)
    make_video(path, frames, codec="ffv1")
    return frames


@pytest.mark.parametrize("batch,stride", [(3, 1), (2, 3), (8, 2)])
def test_frame_pairs_walk_in_step(tmp_path, rng, batch, stride):
    _clip(tmp_path / "a.mkv", rng, 7)
    _clip(tmp_path / "b.mkv", rng, 7)
    a, b = io.read_frames(tmp_path / "a.mkv"), io.read_frames(tmp_path / "b.mkv")
    pairs = io.FramePairs(tmp_path / "a.mkv", tmp_path / "b.mkv", batch, stride=stride)
    got = list(pairs)
    assert all(len(n) <= batch for _, _, n in got)
    numbers = np.concatenate([n for _, _, n in got])
    np.testing.assert_array_equal(numbers, np.arange(0, 7, stride))
    np.testing.assert_array_equal(np.concatenate([r for r, _, _ in got]), a[::stride])
    np.testing.assert_array_equal(np.concatenate([d for _, d, _ in got]), b[::stride])
    assert (pairs.ref_frames, pairs.dist_frames, pairs.notes) == (7, 7, [])


@pytest.mark.parametrize("longer", ["ref", "dist"])
def test_frame_pairs_mismatch_policy_warns_and_counts(tmp_path, rng, longer):
    _clip(tmp_path / "long.mkv", rng, 9)
    _clip(tmp_path / "short.mkv", rng, 5)
    paths = ("long.mkv", "short.mkv") if longer == "ref" else ("short.mkv", "long.mkv")
    pairs = io.FramePairs(tmp_path / paths[0], tmp_path / paths[1], 2)
    with pytest.warns(UserWarning, match="frame counts differ"):
        numbers = np.concatenate([n for _, _, n in pairs])
    np.testing.assert_array_equal(numbers, np.arange(5))
    counts = (9, 5) if longer == "ref" else (5, 9)
    assert (pairs.ref_frames, pairs.dist_frames) == counts
    assert pairs.notes == [f"frame counts differ: reference has {counts[0]}, distorted has {counts[1]}; "
                           f"scored the first 5"]


@pytest.mark.parametrize("longer", ["ref", "dist"])
def test_frame_pairs_strict_raises_on_a_mismatch(tmp_path, rng, longer):
    """strict=True (the study's policy): different counts or sizes are a VideoError, not a warning."""
    _clip(tmp_path / "long.mkv", rng, 5)
    _clip(tmp_path / "short.mkv", rng, 3)
    paths = ("long.mkv", "short.mkv") if longer == "ref" else ("short.mkv", "long.mkv")
    with pytest.raises(VideoError, match="hold different numbers of frames"):
        list(io.FramePairs(tmp_path / paths[0], tmp_path / paths[1], 2, strict=True))
    _clip(tmp_path / "big.mkv", rng, 3, size=(32, 48))
    with pytest.raises(VideoError, match="its reference"):
        list(io.FramePairs(tmp_path / "short.mkv", tmp_path / "big.mkv", 2, strict=True))


def test_frame_pairs_resize_and_bad_batch(tmp_path, rng):
    _clip(tmp_path / "a.mkv", rng, 2, size=(16, 24))
    _clip(tmp_path / "b.mkv", rng, 2, size=(32, 48))
    (r, d, _), = list(io.FramePairs(tmp_path / "a.mkv", tmp_path / "b.mkv", 4, size=(16, 24)))
    assert r.shape == d.shape == (2, 16, 24, 3)
    for bad in (0, True, 1.5):
        with pytest.raises(InputError, match="batch_size"):
            io.FramePairs(tmp_path / "a.mkv", tmp_path / "b.mkv", bad)


def test_a_stream_without_decoder_parameters_is_a_clean_error(tmp_path):
    """An mp4 cut inside its moov box can open with a video stream that has no codec context."""
    rng = np.random.default_rng(0)
    frames = np.clip(rng.integers(0, 256, (1, 32, 32, 3)) + np.arange(16)[:, None, None, None] * 4, 0,
                     255).astype(np.uint8)
    make_video(tmp_path / "v.mp4", frames, crf=25, g=4)
    data = (tmp_path / "v.mp4").read_bytes()
    messages = []
    for i, cut in enumerate(np.linspace(0.5, 0.99, 50)):
        path = tmp_path / f"c{i}.mp4"
        path.write_bytes(data[: int(len(data) * cut)])
        try:
            io.probe(path)
        except VideoError as exc:  # never an AttributeError from PyAV
            messages.append(str(exc))
    assert any("no decoder parameters" in m for m in messages)
