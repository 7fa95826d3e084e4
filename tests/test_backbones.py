"""Backbones: the Focus stem's exact 6x6 equivalent, torchvision first layers, weight errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dctqa.backbones import backbone_names, get_backbone
from dctqa.domains.feature import StemModule
from dctqa.errors import BackboneError, WeightsError


def _onnx_with_first_conv_output(yolox_path, out_dir):
    """Copy of the model whose first Conv's output (before SiLU) is also a graph output."""
    import onnx

    model = onnx.load(str(yolox_path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    model.graph.output.append(onnx.helper.make_tensor_value_info(conv.output[0], onnx.TensorProto.FLOAT, None))
    path = out_dir / "with_stem_output.onnx"
    onnx.save(model, str(path))
    return path, conv.output[0]


def test_focus_stem_equals_6x6_stride2_conv(yolox_path, tmp_path, rng):
    """onnxruntime's first-conv output == our 6x6, stride-2, padding-2 conv on the image."""
    import onnxruntime as ort

    path, name = _onnx_with_first_conv_output(yolox_path, tmp_path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = rng.uniform(0, 255, size=(1, 3, 416, 416)).astype(np.float32)  # BGR, 0..255
    (stem_out,) = sess.run([name], {"images": image})
    bb = get_backbone(f"onnx:{yolox_path}")
    assert bb.filters.shape == (16, 3, 6, 6)
    ours = F.conv2d(torch.tensor(image, dtype=torch.float64), torch.tensor(bb.filters), stride=2, padding=2)
    ours = ours + torch.tensor(bb.stem.shift)[:, None, None]
    assert stem_out.shape == tuple(ours.shape) == (1, 16, 208, 208)
    np.testing.assert_allclose(ours.numpy(), stem_out, rtol=1e-4, atol=1e-3 * np.abs(stem_out).max())
    # and the feature-domain stem (with SiLU) equals the network's activation of it
    module = StemModule(bb.stem, torch.device("cpu"))
    np.testing.assert_allclose(module(torch.tensor(image)).numpy(), F.silu(torch.tensor(stem_out)).numpy(),
                               rtol=1e-4, atol=1e-3)


def test_focus_phase_order_matters(yolox_path):
    """Each 3x3 tap of the ONNX weight lands on its own 6x6 position: no position is used twice."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(yolox_path))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    w = next(numpy_helper.to_array(i) for i in model.graph.initializer if i.name == conv.input[1])
    bb = get_backbone(f"onnx:{yolox_path}")
    assert np.isclose(np.abs(bb.filters).sum(), np.abs(w.astype(np.float64)).sum())
    assert bb.preprocess.channel_order == "BGR" and bb.preprocess.scale == 1.0
    assert bb.stem.activation == "silu" and bb.stem.pad_to_multiple == 2


def test_torchvision_first_layer_from_weights_file(tv_weights, rng):
    """Filters and stem come from the file; the stem equals the network's own first block."""
    from torchvision.models import detection

    name, path = tv_weights
    bb = get_backbone(name, path)
    model = detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    model.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    first = model.backbone.body["0"]
    np.testing.assert_array_equal(bb.filters, first[0].weight.detach().double().numpy())
    x = torch.tensor(rng.normal(size=(1, 3, 33, 40)), dtype=torch.float32)
    with torch.no_grad():
        expected = first(x)
    got = StemModule(bb.stem, torch.device("cpu"))(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-4)
    assert bb.preprocess.mean == (0.485, 0.456, 0.406) and bb.preprocess.channel_order == "RGB"


def test_resnet_backbone_from_weights_file(tmp_path):
    """The paper's backbone: conv1 64x3x7x7 and conv1 -> bn1 -> relu from a state_dict file."""
    from torchvision.models import detection

    torch.manual_seed(1)
    model = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    path = tmp_path / "frcnn.pth"
    torch.save(model.state_dict(), path)
    bb = get_backbone("fasterrcnn_resnet50_fpn", path)
    assert bb.filters.shape == (64, 3, 7, 7)
    body = model.backbone.body
    x = torch.randn(1, 3, 30, 26)
    with torch.no_grad():
        expected = body.relu(body.bn1(body.conv1(x)))
    got = StemModule(bb.stem, torch.device("cpu"))(x)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_missing_weights_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)

    def offline(*args, **kwargs):
        raise OSError("network unreachable (simulated)")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError) as err:
        get_backbone("fasterrcnn_resnet50_fpn_v2")
    msg = str(err.value)
    assert "--weights FILE" in msg and "fasterrcnn_resnet50_fpn_v2_coco" in msg and "torch_home" in msg


def test_bad_weights_files(tmp_path, tv_weights):
    with pytest.raises(WeightsError, match="does not exist"):
        get_backbone("fasterrcnn_resnet50_fpn", tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        get_backbone("fasterrcnn_resnet50_fpn", junk)
    # weights of another detector
    with pytest.raises(WeightsError, match="does not fit"):
        get_backbone("fasterrcnn_resnet50_fpn", tv_weights[1])


def test_bad_backbone_names_and_models(tmp_path):
    with pytest.raises(BackboneError, match="unknown backbone"):
        get_backbone("yolov99")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(BackboneError, match="cannot read"):
        get_backbone(f"onnx:{bad}")
    with pytest.raises(BackboneError, match="takes no weights"):
        get_backbone("pixel", weights="x.pth")
    assert "onnx:PATH" in backbone_names() and "fasterrcnn_resnet50_fpn" in backbone_names()


def test_plain_first_conv_onnx(tmp_path, rng):
    """An ONNX model whose first Conv reads the image directly (ReLU after it)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2]),
         helper.make_node("Relu", ["y"], ["z"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph), str(path))
    bb = get_backbone(f"onnx:{path}")
    np.testing.assert_array_equal(bb.filters, w.astype(np.float64))
    assert bb.stem.stride == 2 and bb.stem.padding == (1, 1, 1, 1) and bb.stem.activation == "relu"


def test_one_spec_parser():
    from dctqa.backbones import onnx_spec, parse_spec

    s = parse_spec("onnx:models/yolox_nano.onnx")
    assert s.kind == "onnx" and s.path == Path("models/yolox_nano.onnx") and s.label == "yolox_nano"
    assert onnx_spec(s.path) == s.text
    assert parse_spec("pixel").kind == "pixel" and parse_spec("pixel").path is None
    assert parse_spec("fasterrcnn_resnet50_fpn").kind == "named"
    for bad, match in (("", "non-empty"), (None, "non-empty"), ("onnx:", "empty ONNX"), ("onnx:  ", "empty ONNX")):
        with pytest.raises(BackboneError, match=match):
            parse_spec(bad)
