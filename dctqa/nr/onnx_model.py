"""The no-reference predictor with its network in onnxruntime (``dctqa export-nr`` writes the file).

:class:`OnnxNRModel` follows the :class:`dctqa.nr.predict.FramePredictor` protocol of
:class:`dctqa.nr.model.NRModel`: the same ``predict``, ``predict_log``, ``check_options``,
``predict_video`` and ``score``, the same provenance, and predictions that agree with the
checkpoint it came from (within 1e-4 in Q; ``tests/test_nr_onnx.py``). Only the network runs
in onnxruntime; the patches still come from :func:`dctqa.nr.sampling.patch_corners` (the op
``sample_patches`` for ``activation``), so the package itself is still imported.

The ONNX file holds one graph with two independent halves:

* ``frames`` (float32 ``[N, 3, H, W]``, RGB in [0, 1], any ``N``, ``H``, ``W``) ->
  ``conv1`` (``[N, C, H', W']``: the first conv layer's maps, before the ReLU, of the
  locally contrast-normalised frames: what activation sampling draws from);
* ``crops`` (float32 ``[B, 3, P, P]``, ``P`` the patch size, any ``B``) -> ``z`` (``[B]``:
  the standardised log Q of each crop; ``log Q = z * target_std + target_mean``).

Each half gets its own onnxruntime session (extracted from the one graph on loading). The
model's ``metadata_props`` carry the provenance (:data:`META_KIND` and the keys
:func:`metadata` writes); a file without them is refused.

:func:`load_predictor` and :func:`create` choose the backend by the file: ONNX (suffix
``.onnx``, or a protobuf that starts with the ONNX ``ir_version`` field) or a torch checkpoint.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from .model import (CROP_CHUNK, LCN, CheckpointError, NRConfig, NRModel, NRNet, Provenance, _checkpoint_calibration,
                    _checkpoint_config, _checkpoint_provenance)
from .model import create as create_torch
from .predict import DEFAULT_OPTIONS, Prediction, as_frames, predict_video, resolve_options

#: ``metadata_props`` value of key ``dctqa_kind`` that marks our export; its format number.
META_KIND = "dctqa_nr_onnx"
ONNX_FORMAT = 1
#: The graph's input and output names (see the module docstring).
FRAMES, CONV1, CROPS, Z = "frames", "conv1", "crops", "z"


def metadata(model: NRModel, *, source_sha256: str, patches: int, sampling: str) -> dict[str, str]:
    """The ``metadata_props`` of an export of ``model`` (all values strings): kind and format,
    dctqa version, metric version, backbone (name, sha256), target column and its
    standardisation, patch size, the sampler's sigma, the recommended ``patches`` and
    ``sampling``, the whole config/provenance/input normalisation as JSON, and the sha256 of
    the source checkpoint, and its conformal ``calibration`` as JSON (``null`` without one)."""
    from .. import __version__

    cfg, prov = model.cfg, model.prov
    return {"dctqa_kind": META_KIND, "dctqa_format": str(ONNX_FORMAT), "dctqa_version": __version__,
            "metric_version": str(prov.metric_version), "backbone": prov.backbone,
            "backbone_sha256": prov.backbone_sha256, "target": str(prov.target),
            "target_mean": repr(float(prov.target_mean)), "target_std": repr(float(prov.target_std)),
            "patch": str(cfg.patch), "sigma": repr(float(cfg.sigma)), "patches": str(patches), "sampling": sampling,
            "config": json.dumps(asdict(cfg)), "provenance": json.dumps(asdict(prov)),
            "input_normalisation": json.dumps(LCN), "source_sha256": source_sha256,
            "calibration": json.dumps(model.calibration)}  # "null": an uncalibrated checkpoint


def is_onnx(path: str | os.PathLike) -> bool:
    """Whether ``path`` names an ONNX file: suffix ``.onnx``, or a file whose first byte is the
    ONNX ``ir_version`` field's tag (0x08; a torch checkpoint starts with a zip or pickle header)."""
    p = Path(path)
    if p.suffix.lower() == ".onnx":
        return True
    try:
        if not p.is_file():  # never open a FIFO or device: reading it could wait forever
            return False
        with open(p, "rb") as fh:
            return fh.read(1) == b"\x08"
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return False


def _read_model(path: Path) -> Any:
    """The checked ``onnx.ModelProto`` of ``path``."""
    import onnx

    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise CheckpointError(f"model file {str(path)!r} {what}")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:  # protobuf and the checker raise many types for a foreign file
        raise CheckpointError(f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__}: "
                              f"{str(exc).strip()[:200]})") from None
    return proto


def _read_meta(path: Path, proto: Any) -> tuple[NRConfig, Provenance, dict[str, str]]:
    """Config, provenance and raw metadata of an export, refusing a file that is not ours."""
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("dctqa_kind") != META_KIND:
        raise CheckpointError(f"{str(path)!r} is an ONNX model but not one written by `dctqa export-nr` (no "
                              f"dctqa_kind={META_KIND} in its metadata)")
    if meta.get("dctqa_format") != str(ONNX_FORMAT):
        raise CheckpointError(f"{str(path)!r} has export format {meta.get('dctqa_format')!r}, expected {ONNX_FORMAT}")
    try:
        cfg_json, prov_json = json.loads(meta["config"]), json.loads(meta["provenance"])
        lcn = json.loads(meta["input_normalisation"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{str(path)!r}: its dctqa metadata is incomplete or damaged ({exc!r})") from None
    if lcn != LCN:
        raise CheckpointError(f"{str(path)!r} was made with another input normalisation ({lcn}); export it again")
    # the checkpoint's own checks of its config and provenance (types, finite standardisation, ...)
    cfg, prov = _checkpoint_config(path, cfg_json), _checkpoint_provenance(path, prov_json)
    if meta.get("patch") != str(cfg.patch):
        raise CheckpointError(f"{str(path)!r}: its metadata's patch {meta.get('patch')!r} and config's patch "
                              f"{cfg.patch} differ; the file was altered")
    return cfg, prov, meta


def _read_calibration(path: Path, meta: dict[str, str]) -> dict | None:
    """The export's conformal calibration (``None`` for an export without one, or of an
    uncalibrated checkpoint), checked as a checkpoint's."""
    try:
        value = json.loads(meta.get("calibration", "null"))
    except ValueError as exc:
        raise CheckpointError(f"{str(path)!r}: its calibration metadata is not JSON ({exc})") from None
    return _checkpoint_calibration(path, value)


def _read_recommended(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    """The export's recommended ``patches`` and ``sampling`` (absent: :data:`DEFAULT_OPTIONS`)."""
    from . import MAX_PATCHES
    from .sampling import SAMPLINGS

    patches, sampling = meta.get("patches"), meta.get("sampling")
    if patches is None and sampling is None:
        return dict(DEFAULT_OPTIONS)
    if not (isinstance(patches, str) and patches.isdigit() and 1 <= int(patches) <= MAX_PATCHES) \
            or sampling not in SAMPLINGS:
        raise CheckpointError(f"{str(path)!r}: its recommended patches {patches!r} / sampling {sampling!r} are not "
                              f"1..{MAX_PATCHES} / one of {SAMPLINGS}; export it again")
    return {"patches": int(patches), "sampling": sampling}


def _check_graph(path: Path, proto: Any, patch: int) -> None:
    """The graph has our inputs and outputs, and its crop input is ``patch`` pixels square."""
    ins = {i.name: i for i in proto.graph.input}
    outs = {o.name for o in proto.graph.output}
    if set(ins) != {FRAMES, CROPS} or outs != {CONV1, Z}:
        raise CheckpointError(f"{str(path)!r}: graph inputs {sorted(ins)} and outputs {sorted(outs)}, expected "
                              f"inputs {[CROPS, FRAMES]} and outputs {[CONV1, Z]}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in ins[CROPS].type.tensor_type.shape.dim]
    if dims[1:] != [3, patch, patch]:
        raise CheckpointError(f"{str(path)!r}: its network takes crops of shape {dims[1:]}, but its metadata "
                              f"says {patch}x{patch} patches (3 x {patch} x {patch}); the file was altered")


def _session(proto: Any, inputs: list[str], outputs: list[str], threads: int | None) -> Any:
    """An onnxruntime CPU session of the part of ``proto`` from ``inputs`` to ``outputs``."""
    import onnxruntime as ort
    from onnx.utils import Extractor

    sub = Extractor(proto).extract_model(inputs, outputs)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(sub.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class OnnxNRModel:
    """A no-reference predictor whose network runs in onnxruntime: ``OnnxNRModel.load(path)``."""

    def __init__(self, path: Path, proto: Any, threads: int | None = None) -> None:
        self.path = path
        self.cfg, self.prov, self.metadata = _read_meta(path, proto)
        self.calibration = _read_calibration(path, self.metadata)
        _check_graph(path, proto, self.cfg.patch)
        try:
            self._conv1 = _session(proto, [FRAMES], [CONV1], threads)
            self._net = _session(proto, [CROPS], [Z], threads)
        except Exception as exc:  # onnxruntime raises its own types for a graph it cannot run
            raise CheckpointError(f"{str(path)!r}: onnxruntime cannot run it ({type(exc).__name__}: "
                                  f"{str(exc).strip()[:200]})") from None
        self.name, self.kind, self.lower_better = "dctqa_nr", "NR", True
        self.device = "cpu"
        #: The export's recorded ``patches``/``sampling`` (``dctqa export-nr --patches/--sampling``):
        #: what a prediction that gives none uses.
        self.recommended = _read_recommended(path, self.metadata)
        #: Where it was loaded from (``model``: the path, ``model_sha256``: the file's).
        self.source: dict[str, Any] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, *, backbone: str | None = None, metric_version: str | None = None,
             device: str = "cpu", threads: int | None = None) -> "OnnxNRModel":
        """Load an export, refusing one made for another metric version (default: this
        package's) or, when ``backbone`` is given, for another backbone (as
        :meth:`NRModel.load`); ``device`` must be the CPU; ``threads``: onnxruntime's
        intra-op threads (default: its own choice)."""
        from ..constants import METRIC_VERSION
        from ..metric import check_device

        if check_device(device).type != "cpu":
            raise InputError(f"the ONNX backend runs on the CPU (onnxruntime), not {device!r}; use the torch "
                             "checkpoint for another device")
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise InputError("the ONNX backend needs onnxruntime: pip install 'dctqa[nr]' (or use the torch "
                             "checkpoint)") from None
        from ..fileio import file_sha256

        p = Path(path)
        model = cls(p, _read_model(p), threads)
        model.source = {"model": str(p), "model_sha256": file_sha256(p)}
        want = metric_version or METRIC_VERSION
        if str(model.prov.metric_version) != str(want):
            raise CheckpointError(f"{str(p)!r} was exported for metric version {model.prov.metric_version}, this is "
                                  f"{want}: retrain and export it again")
        if backbone is not None:
            from .data import backbone_identity

            ident = backbone_identity(backbone)
            if ident != model.prov.backbone_sha256:
                raise CheckpointError(f"{str(p)!r} was trained on Q of backbone {model.prov.backbone}, not {backbone}")
        return model

    def conv1(self, frames: np.ndarray) -> np.ndarray:
        """First-layer maps (before the ReLU) of normalised frames: float32 ``[N, 3, H, W]`` in
        [0, 1] -> ``[N, C, H', W']`` (as :meth:`NRNet.conv1` of :func:`local_contrast_normalise`)."""
        return self._conv1.run([CONV1], {FRAMES: np.ascontiguousarray(frames, dtype=np.float32)})[0]

    def network(self, crops: np.ndarray) -> np.ndarray:
        """Standardised log Q of crops: float32 ``[B, 3, P, P]`` in [0, 1] -> ``[B]``."""
        return self._net.run([Z], {CROPS: np.ascontiguousarray(crops, dtype=np.float32)})[0]

    def check_options(self, *, patches: int = 2, sampling: str = "activation", height: int | None = None,
                      width: int | None = None) -> None:
        """As :meth:`dctqa.nr.model.NRModel.check_options` (the same rules, on this patch size)."""
        NRModel.check_options(self, patches=patches, sampling=sampling, height=height, width=width)  # type: ignore[arg-type]

    def predict_video(self, video: str | os.PathLike, **options: Any) -> Prediction:
        """:func:`dctqa.nr.predict.predict_video` with this model."""
        return predict_video(self, video, **options)

    def predict(self, frames: np.ndarray | Sequence[np.ndarray], *, patches: int | None = None,
                sampling: str | None = None, seed: int = 0, batch_size: int = 8) -> np.ndarray:
        """Predicted Q (``>= 0``) of each frame, as :meth:`dctqa.nr.model.NRModel.predict`;
        ``frames`` may also be ``[N, 3, H, W]`` (a torch tensor from :class:`dctqa.serve.StreamScorer`);
        ``patches``/``sampling`` ``None``: the export's :attr:`recommended`."""
        patches, sampling = resolve_options(self, patches, sampling)
        arr = as_frames(frames)
        out = [self.predict_log(arr[i:i + batch_size], patches=patches, sampling=sampling, seed=seed + i)
               for i in range(0, len(arr), batch_size)]
        return np.exp(np.concatenate(out)) if out else np.zeros(0)

    def predict_interval(self, frames: np.ndarray | Sequence[np.ndarray], **options: Any
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q, low, high)`` as :meth:`dctqa.nr.model.NRModel.predict_interval` (the interval
        from the calibration in the export's metadata)."""
        return NRModel.predict_interval(self, frames, **options)  # type: ignore[arg-type]

    def interval(self, q: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` around predictions ``q``, as :meth:`dctqa.nr.model.NRModel.interval`."""
        return NRModel.interval(self, q)  # type: ignore[arg-type]

    def predict_log(self, frames: np.ndarray, *, patches: int = 2, sampling: str = "activation",
                    seed: int = 0) -> np.ndarray:
        """Predicted log Q of ``[N, H, W, 3]`` uint8 frames (mean over ``patches`` crops)."""
        import torch

        from .sampling import patch_corners

        frames = as_frames(frames)
        n, h, w, _ = frames.shape
        self.check_options(patches=patches, sampling=sampling, height=h, width=w)
        p = self.cfg.patch
        x = np.ascontiguousarray(frames.transpose(0, 3, 1, 2)).astype(np.float32) / np.float32(255.0)
        act = torch.from_numpy(self.conv1(x)) if sampling == "activation" else None
        corners = patch_corners(sampling, h, w, p, patches, seed=seed, act=act, stride=NRNet.CONV1_STRIDE,
                                offset=NRNet.CONV1_OFFSET, sigma=self.cfg.sigma, n=n)
        where = [(i, t, l) for i, row in enumerate(corners.tolist()) for t, l in row]
        outs = []
        for k in range(0, len(where), CROP_CHUNK):  # memory bounded by the chunk, as the torch path
            crops = np.stack([x[i, :, t:t + p, l:l + p] for i, t, l in where[k:k + CROP_CHUNK]])
            outs.append(self.network(crops))
        z = np.concatenate(outs).astype(np.float64).reshape(n, patches).mean(1)
        return z * self.prov.target_std + self.prov.target_mean

    def score(self, dist: np.ndarray) -> float | np.ndarray:
        """Registry interface of a no-reference metric: predicted Q of a frame (or frames)."""
        q = self.predict(dist)
        return float(q[0]) if np.asarray(dist).ndim == 3 else q


def load_predictor(path: str | os.PathLike, **kwargs: Any) -> NRModel | OnnxNRModel:
    """:meth:`OnnxNRModel.load` for an ONNX file (:func:`is_onnx`), else :meth:`NRModel.load`
    (``kwargs``: ``backbone``, ``metric_version``, ``device``)."""
    return OnnxNRModel.load(path, **kwargs) if is_onnx(path) else NRModel.load(path, **kwargs)


def create(model: Any = None, **kwargs: Any) -> Any:
    """Factory of the registry entry ``dctqa_nr``: no ``model`` gets the shipped default model
    (:func:`dctqa.nr.default.load_default`); an ONNX export (a path, :func:`is_onnx`) gets
    :class:`OnnxNRModel`; anything else goes to :func:`dctqa.nr.model.create` (a checkpoint
    path or a loaded model)."""
    if model is None:
        from .default import load_default

        return load_default(**kwargs)
    if isinstance(model, OnnxNRModel):
        return model
    if isinstance(model, (str, os.PathLike)) and is_onnx(model):
        return OnnxNRModel.load(model, **kwargs)
    return create_torch(model, **kwargs)
