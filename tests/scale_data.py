"""Small video pairs for the scale tests (made from the shared car-detection.mp4)."""
from __future__ import annotations

from pathlib import Path

from tests.helpers import make_video

#: frames per test video, and the scored frames per segment the tests use
FRAMES = 40
SEGMENT = 8


def make_pairs(folder: Path, car_path: Path, pairs: int = 2) -> Path:
    """``folder/manifest.csv`` over ``pairs`` distorted versions of one small reference
    (192x108, GOPs of 7 to 10 frames with B-frames, so segments seek into the middle of GOPs)."""
    from dctqa.io import read_frames

    frames = read_frames(car_path, max_frames=FRAMES)[:, ::4, ::4].copy()
    make_video(folder / "ref.mp4", frames, crf=12, g=10, bf=2)
    rows = ["ref,dist,crf"]
    for i in range(pairs):
        crf = 30 + 4 * i
        make_video(folder / f"d{i}.mp4", frames, crf=crf, g=7 + i, bf=3 - i % 2)
        rows.append(f"ref.mp4,d{i}.mp4,{crf}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return folder / "manifest.csv"
