"""``dctqa export-nr MODEL --onnx OUT``: the no-reference network as ONNX, for a server.

Only the network is exported (its first conv layer on whole frames, for activation
sampling, and the whole net on crops; see :mod:`dctqa.nr.onnx_model` for the graph); the
patch sampler stays in the op ``sample_patches``. The exporter is torch's TorchScript-based
one (``dynamo=False``): the dynamo-based default needs ``onnxscript``, which dctqa does not
depend on. Before anything is written, the graph is checked (``onnx.checker``, full check)
and run in onnxruntime on probe inputs against the torch net; the file is then written
atomically (never a partial file).
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import DctqaError
from .model import CheckpointError, NRModel, local_contrast_normalise
from .onnx_model import CONV1, CROPS, FRAMES, Z, OnnxNRModel, metadata

#: ONNX opset of the export (onnxruntime 1.17, the oldest dctqa[nr] allows, runs it).
OPSET = 17
#: Largest difference of the exported net's standardised output from torch's on the probe
#: inputs, above which the export is refused (the predictions must agree within 1e-4).
PROBE_TOL = 1e-5


class ExportError(DctqaError):
    """The network could not be exported, or the export does not reproduce the torch net."""


class _Halves(nn.Module):
    """The two halves of the exported graph: frames -> conv1 maps, crops -> standardised log Q.

    The crop half is :meth:`NRNet.forward` with its adaptive average pooling written as the
    fixed linear map it is for this patch size (``A @ X @ A^T``, ``A`` the pooling of an
    identity matrix by torch's own ``adaptive_avg_pool1d``): the TorchScript exporter cannot
    export adaptive pooling of an input whose size it does not track.
    """

    def __init__(self, model: NRModel) -> None:
        super().__init__()
        self.net = model.net
        with torch.no_grad():
            p = model.cfg.patch
            rows, cols = self.net.features(torch.zeros(1, 3, p, p)).shape[2:]
            out_r, out_c = self.net.pool.output_size
        eye = torch.eye
        self.register_buffer("pool_rows", F.adaptive_avg_pool1d(eye(rows)[None], out_r)[0].T.contiguous())
        self.register_buffer("pool_cols", F.adaptive_avg_pool1d(eye(cols)[None], out_c)[0].T.contiguous())

    def forward(self, frames: torch.Tensor, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.net.features(local_contrast_normalise(crops))
        pooled = torch.matmul(torch.matmul(self.pool_rows, f), self.pool_cols.T)
        return self.net.conv1(local_contrast_normalise(frames)), self.net.head(pooled)[:, 0]


def _probe(model: NRModel, n: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Probe inputs: ``n`` frames of 1.5 x 1.25 patches and ``n`` crops, uniform in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    p = model.cfg.patch
    return (torch.rand(n, 3, p + p // 4, p + p // 2, generator=g), torch.rand(n, 3, p, p, generator=g))


def onnx_bytes(model: NRModel, *, opset: int = OPSET) -> bytes:
    """The serialised ONNX graph of ``model``'s network (no metadata yet), dynamic in the batch
    (and the frame size of the ``frames`` half)."""
    wrapper = _Halves(model).eval()
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's tracer and deprecation notes, not ours to act on
            torch.onnx.export(wrapper, _probe(model), buf, dynamo=False, opset_version=opset,
                              input_names=[FRAMES, CROPS], output_names=[CONV1, Z],
                              dynamic_axes={FRAMES: {0: "n", 2: "height", 3: "width"}, CROPS: {0: "batch"},
                                            CONV1: {0: "n", 2: "rows", 3: "cols"}, Z: {0: "batch"}})
    except Exception as exc:  # the exporter raises many types
        raise ExportError(f"torch.onnx.export failed ({type(exc).__name__}: {str(exc).strip()[:300]})") from None
    return buf.getvalue()


def _verify(data: bytes, model: NRModel, where: str) -> None:
    """Run the export (with its metadata) in onnxruntime on probe inputs; refuse it unless both
    halves match the torch net within :data:`PROBE_TOL`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dctqa-export-") as d:
        path = Path(d) / "probe.onnx"
        path.write_bytes(data)
        ort_model = OnnxNRModel.load(path, metric_version=str(model.prov.metric_version))
    frames, crops = _probe(model, seed=1)
    with torch.no_grad():
        want_act, want_z = _Halves(model).eval()(frames, crops)
    got_act, got_z = ort_model.conv1(frames.numpy()), ort_model.network(crops.numpy())
    err = max(float(np.abs(got_act - want_act.numpy()).max()), float(np.abs(got_z - want_z.numpy()).max()))
    if not err <= PROBE_TOL:
        raise ExportError(f"{where}: the exported network differs from the torch one by {err:.3g} on probe "
                          f"inputs (tolerance {PROBE_TOL}); nothing written")


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike, *, patches: int = 2,
                sampling: str = "activation", opset: int = OPSET) -> Path:
    """Export the network of ``checkpoint`` (a ``dctqa train-nr`` file) to ONNX file ``out``
    (replaced atomically if it exists, as the other commands' outputs are), with the
    checkpoint's provenance and the recommended ``patches`` / ``sampling`` in its metadata.
    Returns ``out``. Raises :class:`CheckpointError` for a bad checkpoint, :class:`ExportError`
    when the export fails or does not reproduce the net, :class:`dctqa.errors.OutputError`
    for an unwritable ``out``."""
    import onnx

    from ..fileio import OutputSet, file_sha256

    with OutputSet(inputs=[checkpoint]) as outputs:
        outputs.add(out)
        model = NRModel.load(checkpoint)
        model.check_options(patches=patches, sampling=sampling)
        proto = onnx.load_from_string(onnx_bytes(model, opset=opset))
        meta = metadata(model, source_sha256=file_sha256(checkpoint), patches=patches, sampling=sampling)
        onnx.helper.set_model_props(proto, meta)
        proto.producer_name, proto.doc_string = "dctqa export-nr", "dctqa no-reference network (dctqa.nr.onnx_model)"
        try:
            onnx.checker.check_model(proto, full_check=True)
        except Exception as exc:  # noqa: BLE001 - the checker's own error types
            raise ExportError(f"the exported graph fails onnx.checker ({exc})") from None
        data = proto.SerializeToString()
        _verify(data, model, str(checkpoint))
        outputs.write_bytes(out, data)
    return Path(out)


__all__ = ["export_onnx", "onnx_bytes", "ExportError", "CheckpointError", "OPSET"]
