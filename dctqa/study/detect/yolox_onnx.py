"""YOLOX exported to ONNX, run through onnxruntime.

Input convention of the YOLOX exports (e.g. ``../shared/models/yolox_nano.onnx``): one
tensor ``[N, 3, H, W]`` float32, **BGR, 0..255, not normalised**; the frame is resized
by ``r = min(H / h, W / w)`` (bilinear) into the top-left corner of a canvas filled with
114. Output ``[N, A, 5 + C]``: per anchor ``cx, cy, w, h`` in grid units, objectness and
``C`` class scores (already sigmoid). Anchors run over the strides 8, 16, 32, each level
row-major (x fastest). Decoding: ``xy = (xy + grid) * stride``, ``wh = exp(wh) * stride``.
Score of an anchor = objectness * its best class score (YOLOX's own evaluation path);
class-wise NMS; boxes are mapped back by dividing by ``r`` and clipped to the frame.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...backbones.spec import onnx_spec
from ...errors import BackboneError, InputError
from .categories import coco80_to_coco91
from ...fileio import file_sha256
from .types import Detections, Detector, check_frames

STRIDES = (8, 16, 32)
PAD_VALUE = 114.0


def letterbox(frame: np.ndarray, size: tuple[int, int], pad_value: float = PAD_VALUE
              ) -> tuple[np.ndarray, float]:
    """Resize an HxWx3 uint8 RGB frame into a top-left aligned ``size = (H, W)`` canvas.

    Returns ``(image, r)``: image ``3 x H x W`` float32 **BGR** in 0..255 (the resized
    frame rounded to integers as an 8-bit resize would give, the rest ``pad_value``), and
    the scale ``r = min(H / h, W / w)``; a point ``p`` of the frame lands at ``p * r``.
    """
    import torch
    import torch.nn.functional as F

    h, w = frame.shape[:2]
    r = min(size[0] / h, size[1] / w)
    nh, nw = max(1, int(h * r)), max(1, int(w * r))
    t = torch.from_numpy(np.ascontiguousarray(frame[:, :, ::-1])).permute(2, 0, 1)[None].float()
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=False)
        t = t.round_().clamp_(0, 255)
    out = np.full((3, size[0], size[1]), pad_value, dtype=np.float32)
    out[:, :nh, :nw] = t[0].numpy()
    return out, r


def anchor_grid(size: tuple[int, int], strides: Sequence[int] = STRIDES
                ) -> tuple[np.ndarray, np.ndarray]:
    """Anchor cell offsets and strides for input ``size = (H, W)``.

    Returns ``grid`` (A, 2) float32 of ``(x, y)`` cell indices and ``stride`` (A, 1) float32,
    levels in the order of ``strides``, each level row-major with x varying fastest.
    """
    grids, strs = [], []
    for s in strides:
        hs, ws = size[0] // s, size[1] // s
        yv, xv = np.meshgrid(np.arange(hs), np.arange(ws), indexing="ij")
        grids.append(np.stack([xv, yv], axis=-1).reshape(-1, 2))
        strs.append(np.full((hs * ws, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strs).astype(np.float32)


def decode(raw: np.ndarray, grid: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """Decode raw outputs (..., A, 5 + C) to input pixels: centres, sizes; scores unchanged."""
    out = np.array(raw, dtype=np.float32, copy=True)
    out[..., 0:2] = (out[..., 0:2] + grid) * stride
    out[..., 2:4] = np.exp(out[..., 2:4]) * stride
    return out


def postprocess(decoded: np.ndarray, ratio: float, frame_hw: tuple[int, int],
                score_threshold: float, nms_threshold: float, max_detections: int,
                class_ids: np.ndarray) -> Detections:
    """Turn one frame's decoded anchors (A, 5 + C) into :class:`Detections`.

    Score = objectness * best class score; anchors below ``score_threshold`` are dropped;
    class-wise NMS at IoU ``nms_threshold``; at most ``max_detections`` kept (highest
    scores); boxes divided by ``ratio`` and clipped to ``frame_hw = (h, w)``; boxes left
    with no area are dropped. ``class_ids`` maps contiguous class -> COCO category id.
    """
    import torch
    from torchvision.ops import batched_nms

    d = torch.from_numpy(np.ascontiguousarray(decoded, dtype=np.float32))
    cls_score, cls_idx = d[:, 5:].max(dim=1)
    score = d[:, 4] * cls_score
    keep = score >= score_threshold
    d, score, cls_idx = d[keep], score[keep], cls_idx[keep]
    half = d[:, 2:4] / 2
    boxes = torch.cat([d[:, 0:2] - half, d[:, 0:2] + half], dim=1) / ratio
    order = batched_nms(boxes, score, cls_idx, nms_threshold)[:max_detections]
    boxes, score, cls_idx = boxes[order], score[order], cls_idx[order]
    h, w = frame_hw
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return Detections(boxes[ok].numpy(), score[ok].numpy(), class_ids[cls_idx[ok].numpy()])


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError(f"device {device!r}: this onnxruntime has no CUDAExecutionProvider "
                             f"(available: {ort.get_available_providers()}); install onnxruntime-gpu "
                             f"or use device='cpu'")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise InputError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")


class YoloxOnnxDetector(Detector):
    """YOLOX (80 COCO classes) from an ONNX file; see the module docstring for the format.

    ``input_size`` (H, W) is read from the model's input shape; pass it only for models
    with a dynamic input size (it must match a static one). ``device`` does not enter
    :meth:`settings` (CPU and GPU give the same detections up to float rounding).
    """

    def __init__(self, path: str | os.PathLike, device: str = "cpu", score_threshold: float = 0.05,
                 nms_threshold: float = 0.65, max_detections: int = 100,
                 input_size: tuple[int, int] | None = None, num_threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise BackboneError(f"ONNX detector file {str(self.path)!r} does not exist")
        if not 0.0 <= score_threshold <= 1.0:
            raise InputError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if not 0.0 < nms_threshold <= 1.0:
            raise InputError(f"nms_threshold must be in (0, 1], got {nms_threshold}")
        if int(max_detections) < 1:
            raise InputError(f"max_detections must be >= 1, got {max_detections}")
        self.name = onnx_spec(self.path.name)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_detections = int(max_detections)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=_providers(device))
        except InputError:
            raise
        except Exception as exc:
            raise BackboneError(f"onnxruntime cannot load {str(self.path)!r}: {exc}") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise BackboneError(f"{self.path.name}: expected one input [N, 3, H, W], got "
                                f"{[(i.name, i.shape) for i in inputs]}")
        shape = inputs[0].shape
        self.input_name = inputs[0].name
        static = [d if isinstance(d, int) else None for d in shape]
        if static[2] is not None and static[3] is not None:
            size = (static[2], static[3])
            if input_size is not None and tuple(input_size) != size:
                raise InputError(f"{self.path.name} has a fixed input size {size}; got input_size={input_size}")
        elif input_size is not None:
            size = (int(input_size[0]), int(input_size[1]))
        else:
            raise InputError(f"{self.path.name} has a dynamic input size {shape}; pass input_size=(H, W)")
        if any(s % STRIDES[-1] for s in size):
            raise BackboneError(f"input size {size} is not a multiple of {STRIDES[-1]}")
        self.input_size = size
        self.batch = static[0]  # None: any batch size
        self.grid, self.stride = anchor_grid(size)
        out_shape = outputs[0].shape
        a = out_shape[1] if len(out_shape) == 3 else None
        c = out_shape[2] if len(out_shape) == 3 else None
        if len(out_shape) != 3 or (isinstance(a, int) and a != len(self.grid)) or c != 85:
            raise BackboneError(f"{self.path.name}: expected output [N, {len(self.grid)}, 85] (YOLOX, "
                                f"80 COCO classes, strides {STRIDES}) for input {size}, got {out_shape}")
        self.class_ids = coco80_to_coco91()
        self._sha256 = file_sha256(self.path)

    def settings(self) -> dict[str, Any]:
        return {"type": "yolox-onnx", "model_sha256": self._sha256, "input_size": list(self.input_size),
                "score_threshold": self.score_threshold, "nms_threshold": self.nms_threshold,
                "max_detections": self.max_detections, "pad_value": PAD_VALUE, "resize": "bilinear",
                "score": "obj*max_cls", "version": 1}

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Raw network output (N, A, 85) for letterboxed images (N, 3, H, W) float32."""
        if self.batch is None:
            return self.session.run(None, {self.input_name: images})[0]
        return np.concatenate([self.session.run(None, {self.input_name: images[i:i + self.batch]})[0]
                               for i in range(0, len(images), self.batch)])

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        frames = check_frames(frames)
        if not frames:
            return []
        boxed = [letterbox(f, self.input_size) for f in frames]
        raw = self.forward(np.stack([b[0] for b in boxed]))
        dec = decode(raw, self.grid, self.stride)
        return [postprocess(dec[i], boxed[i][1], frames[i].shape[:2], self.score_threshold,
                            self.nms_threshold, self.max_detections, self.class_ids)
                for i in range(len(frames))]
