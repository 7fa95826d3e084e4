"""Shared fixtures: where ``../shared`` is, and real frames from it.

``DCTQA_SHARED`` overrides the default ``<repo>/../shared``. Tests that need a file
from there skip with the reason when it is absent.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    from dctqa.settings import shared_dir as configured

    return configured()


def shared_file(rel: str) -> Path:
    """Path of ``rel`` under the shared folder, or skip the test saying what is missing."""
    p = shared_dir() / rel
    if not p.is_file():
        pytest.skip(f"needs {rel} from the shared data folder ({p} not found; set DCTQA_SHARED)")
    return p


@pytest.fixture(scope="session")
def shared_path() -> Path:
    return shared_dir()


@pytest.fixture(scope="session")
def vtest_path() -> Path:
    return shared_file("videos/vtest.avi")


@pytest.fixture(scope="session")
def car_path() -> Path:
    return shared_file("videos/car-detection.mp4")


@pytest.fixture(scope="session")
def bottle_path() -> Path:
    return shared_file("videos/bottle-detection.mp4")


@pytest.fixture(scope="session")
def yolox_path() -> Path:
    return shared_file("models/yolox_nano.onnx")


@pytest.fixture(scope="session")
def yolox_backbone(yolox_path: Path) -> str:
    return f"onnx:{yolox_path}"


@pytest.fixture(scope="session")
def vtest_frames(vtest_path: Path) -> np.ndarray:
    """First 30 frames of vtest.avi, ``30 x 576 x 768 x 3`` uint8 RGB."""
    from dctqa.io import read_frames

    return read_frames(vtest_path, max_frames=30)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture(scope="session")
def tv_weights(tmp_path_factory) -> tuple[str, str]:
    """A torchvision detector's state_dict that the test makes itself (random init, random BN stats)."""
    import torch
    from torchvision.models import detection

    torch.manual_seed(0)
    model = detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    bn = model.backbone.body["0"][1]
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("weights") / "frcnn_mbv3.pth"
    torch.save(model.state_dict(), path)
    return "fasterrcnn_mobilenet_v3_large_fpn", str(path)
