"""The one parser of model specs: ``pixel``, ``onnx:PATH`` or a model name.

Backbones (``--backbone``) and detectors (``--detector``) are named the same way; every
place that needs to know which form a spec has, or the ONNX file it names, asks
:func:`parse_spec`, and every place that writes one uses :func:`onnx_spec`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackboneError

#: Prefix of a spec naming an ONNX file.
ONNX_PREFIX = "onnx:"
#: The CNN-free identity backbone.
PIXEL = "pixel"


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec. ``kind``: ``"pixel"``, ``"onnx"`` (``path`` is the file) or
    ``"named"`` (a model name, e.g. a torchvision detector; the caller checks it)."""

    text: str
    kind: str
    path: Path | None = None

    @property
    def label(self) -> str:
        """Short name for titles and table columns: the ONNX file's stem, else the spec."""
        return self.path.stem if self.path is not None else self.text


def parse_spec(spec: object) -> ModelSpec:
    """Parse a backbone/detector spec; :class:`BackboneError` for a non-string, an empty
    spec or ``onnx:`` without a path."""
    if not isinstance(spec, str) or not spec:
        raise BackboneError(f"backbone must be a non-empty name, got {spec!r}")
    if spec.startswith(ONNX_PREFIX):
        path = spec[len(ONNX_PREFIX):]
        if not path.strip():
            raise BackboneError("empty ONNX model path: write the backbone as onnx:PATH, "
                                "e.g. onnx:models/yolox_nano.onnx")
        return ModelSpec(spec, "onnx", Path(path))
    return ModelSpec(spec, PIXEL if spec == PIXEL else "named")


def onnx_spec(path: str | os.PathLike) -> str:
    """The spec ``onnx:PATH`` naming the ONNX file ``path``."""
    return f"{ONNX_PREFIX}{os.fspath(path)}"
