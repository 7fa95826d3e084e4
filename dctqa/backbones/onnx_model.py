"""The first convolution of an ONNX detector, as a filter bank on the image.

Handles a plain first ``Conv`` on the graph input and a space-to-depth ("Focus")
stem: four strided ``Slice`` phases concatenated to 12 channels, then a ``Conv``.
A Focus stem followed by a ``k x k`` conv with padding ``p`` and stride ``s`` is
exactly a ``2k x 2k`` conv on the image with padding ``2p`` and stride ``2s``; the
spectral domain uses that ``2k x 2k`` filter at stride 1 (METRIC.md, "Backbones").
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BackboneError
from .base import Backbone, Preprocess, Stem
from .spec import onnx_spec

#: YOLOX's input convention (the default for ``onnx:`` backbones).
YOLOX_PREPROCESS = Preprocess("BGR", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


class _Graph:
    def __init__(self, model) -> None:
        from onnx import numpy_helper

        g = model.graph
        self.inputs = [i.name for i in g.input]
        self.consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.producer = {}
        self.consumers: dict[str, list] = {}
        for node in g.node:
            for out in node.output:
                self.producer[out] = node
            for inp in node.input:
                self.consumers.setdefault(inp, []).append(node)
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.consts[node.output[0]] = numpy_helper.to_array(attr.t)
        self.nodes = list(g.node)
        self.initializer_names = {i.name for i in g.initializer}

    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name)


def _attr(node, name: str, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _trace_phase(graph: _Graph, tensor: str, image: str) -> tuple[int, int]:
    """Follow a chain of Slice nodes back to the image; return (row, col) phase."""
    start = {2: 0, 3: 0}
    step = {2: 1, 3: 1}
    while tensor != image:
        node = graph.producer.get(tensor)
        if node is None or node.op_type != "Slice":
            raise BackboneError(f"unsupported stem: expected Slice nodes before the concat, found "
                                f"{'graph input' if node is None else node.op_type}")
        starts, axes, steps = (graph.const(node.input[i]) if len(node.input) > i and node.input[i] else None
                               for i in (1, 3, 4))
        if starts is None:
            raise BackboneError("unsupported stem: Slice with non-constant starts")
        axes = list(range(len(starts))) if axes is None else [int(a) % 4 for a in axes]
        steps = np.ones(len(starts), dtype=np.int64) if steps is None else steps
        for a, s0, st in zip(axes, starts, steps):
            if a in start:
                start[a] = start[a] + step[a] * int(s0)
                step[a] *= int(st)
            elif int(s0) != 0 or int(st) != 1:
                raise BackboneError(f"unsupported stem: Slice over axis {a}")
        tensor = node.input[0]
    if step[2] != 2 or step[3] != 2 or start[2] not in (0, 1) or start[3] not in (0, 1):
        raise BackboneError(f"unsupported stem: phase slice with steps {step} and starts {start}")
    return start[2], start[3]


def _activation(graph: _Graph, conv_out: str) -> tuple[str, float]:
    users = graph.consumers.get(conv_out, [])
    kinds = sorted(u.op_type for u in users)
    if kinds == ["Mul", "Sigmoid"]:
        return "silu", 0.0
    if kinds == ["Relu"]:
        return "relu", 0.0
    if kinds == ["LeakyRelu"]:
        return "leaky_relu", float(_attr(users[0], "alpha", 0.01))
    if kinds == ["HardSwish"]:
        return "hardswish", 0.0
    if kinds == ["Silu"] or kinds == ["Swish"]:
        return "silu", 0.0
    raise BackboneError(f"unsupported activation after the first Conv: {kinds}")


def load(path: str | os.PathLike, preprocess: Preprocess | None = None) -> Backbone:
    """Backbone ``onnx:PATH``: the first convolution of the ONNX graph at ``path``.

    ``preprocess`` defaults to YOLOX's convention (BGR, 0..255, no normalisation).
    """
    import onnx

    p = Path(path)
    if not p.exists():
        raise BackboneError(f"ONNX model {str(p)!r} does not exist")
    if p.is_dir():
        raise BackboneError(f"ONNX model path {str(p)!r} is a directory, expected an .onnx file")
    if not p.is_file():
        raise BackboneError(f"ONNX model path {str(p)!r} is not a regular file (a device or FIFO?), "
                            f"expected an .onnx file")
    try:
        model = onnx.load(str(p))
    except Exception as exc:
        raise BackboneError(f"cannot read {str(p)!r} as an ONNX model: {exc}") from None
    graph = _Graph(model)
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    if not convs:
        raise BackboneError(f"ONNX model {str(p)!r} has no Conv node")
    conv = convs[0]
    weight = graph.const(conv.input[1])
    if weight is None:
        raise BackboneError("the first Conv's weight is not a constant of the graph")
    if weight.ndim != 4 or 0 in weight.shape:
        raise BackboneError(f"the first Conv of {str(p)!r} has a weight of shape {weight.shape}; expected a "
                            f"2-D convolution weight K x C x kh x kw with every size >= 1")
    weight = weight.astype(np.float64)
    bias = graph.const(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else None
    bias = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
    if int(_attr(conv, "group", 1)) != 1 or list(_attr(conv, "dilations", [1, 1])) != [1, 1]:
        raise BackboneError("the first Conv is grouped or dilated; not supported")
    strides = list(_attr(conv, "strides", [1, 1]))
    pads = list(_attr(conv, "pads", [0, 0, 0, 0]))  # top, left, bottom, right
    if len(strides) != 2 or strides[0] != strides[1] or strides[0] < 1:
        raise BackboneError(f"the first Conv has strides {strides}; expected two equal strides >= 1")
    if len(pads) != 4 or min(pads) < 0:
        raise BackboneError(f"the first Conv has pads {pads}; expected four values >= 0")
    if _attr(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise BackboneError("the first Conv uses auto_pad; explicit pads are required")
    if not graph.inputs:
        raise BackboneError(f"ONNX model {str(p)!r} has no graph input; expected the image as its first input")
    image = graph.inputs[0]
    src = conv.input[0]
    k, cin, kh, kw = weight.shape
    if src == image:
        if cin != 3:
            raise BackboneError(f"the first Conv reads {cin} channels, expected 3")
        filters, stride, multiple = weight, int(strides[0]), 1
        padding = (pads[0], pads[2], pads[1], pads[3])
        kind = "conv"
    else:
        cat = graph.producer.get(src)
        if cat is None or cat.op_type != "Concat" or int(_attr(cat, "axis", 1)) != 1 or cin != 3 * len(cat.input):
            raise BackboneError("unsupported stem: the first Conv reads neither the image nor a Focus concat")
        phases = [_trace_phase(graph, t, image) for t in cat.input]
        if sorted(phases) != [(0, 0), (0, 1), (1, 0), (1, 1)]:
            raise BackboneError(f"unsupported stem: Focus phases {phases}")
        filters = np.zeros((k, 3, 2 * kh, 2 * kw))
        for g, (a, b) in enumerate(phases):
            filters[:, :, a::2, b::2] = weight[:, 3 * g:3 * g + 3]
        stride, multiple = 2 * int(strides[0]), 2
        padding = (2 * pads[0], 2 * pads[2], 2 * pads[1], 2 * pads[3])
        kind = f"focus{phases}"
    act, slope = _activation(graph, conv.output[0])
    stem = Stem(weight=filters, stride=stride, padding=tuple(int(v) for v in padding),
                scale=np.ones(k), shift=bias, activation=act, pad_to_multiple=multiple,
                negative_slope=slope)
    return Backbone(name=onnx_spec(p), filters=filters, preprocess=preprocess or YOLOX_PREPROCESS,
                    stem=stem, source=str(p.resolve()),
                    details={"stem_kind": kind, "first_conv": conv.name or conv.output[0],
                             "first_conv_output": conv.output[0]})
