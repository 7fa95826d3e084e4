"""The default no-reference model that ships as package data (issue 22).

Two files under ``dctqa/nr/models/``: ``nr-default.pt``, a checkpoint written by ``dctqa
train-nr`` (in practice ``--split all``, calibrated by ``dctqa calibrate-nr --from-folds``),
stripped of its optimiser and scheduler state; and ``nr-default.json`` beside it, the record
that vouches for it: the file's sha256 and size, metric version, backbone (name and sha256),
target column, split, when it was installed, the model card's path, the recommended patch
count and placement (``patches``, ``sampling``: the one place they are written; ``dctqa
predict``, ``create_metric("dctqa_nr")``, ``StreamScorer`` and ``score-many --no-reference``
use them when no ``--patches``/``--sampling`` is given), and a summary of its calibration.

:func:`load_default` checks the record before anything is unpickled: both files present, the
checkpoint at most :data:`MAX_BYTES` and of the recorded size and sha256; then it loads the
weights through :meth:`dctqa.nr.model.NRModel.load` (``torch.load(weights_only=True)``: no
arbitrary object is ever unpickled) and checks the checkpoint's provenance against the record.
Any failure is a :class:`~dctqa.nr.model.CheckpointError` that names the file and says how
to pass a model instead.

:func:`install` (``python -m dctqa.nr.default --install CHECKPOINT``) writes both files from
a trained, calibrated checkpoint.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from .model import CheckpointError, NRModel, read_checkpoint
from .predict import DEFAULT_OPTIONS

#: Stem of the shipped files (``NAME.pt``, ``NAME.json``) and of the model card.
NAME = "nr-default"
#: Where the package keeps them (package data; tests point it elsewhere).
MODELS_DIR = Path(__file__).resolve().parent / "models"
#: The model card, relative to the repository root.
MODEL_CARD = (Path("docs") / "models" / f"{NAME}.md").as_posix()
#: Largest checkpoint the package ships (bytes): 5 MB.
MAX_BYTES = 5_000_000
#: Format of the JSON record.
INFO_FORMAT = 1
#: Keys every record has.
INFO_KEYS = ("format", "file", "sha256", "bytes", "metric_version", "backbone", "backbone_sha256", "target",
             "created", "model_card", "patches", "sampling")
#: Checkpoint entries :func:`install` drops (training state, not needed to predict).
TRAINING_STATE = ("optimizer", "scheduler")
#: What every refusal says about the way out.
HOW_TO_PASS = ("pass a model yourself: `dctqa predict VIDEO --model CHECKPOINT`, "
               "create_metric('dctqa_nr', model=CHECKPOINT)")


def default_model_path() -> Path:
    """The shipped checkpoint, ``dctqa/nr/models/nr-default.pt`` (it may not exist)."""
    return MODELS_DIR / f"{NAME}.pt"


def default_info_path() -> Path:
    """Its record, ``dctqa/nr/models/nr-default.json``."""
    return MODELS_DIR / f"{NAME}.json"


def _sha256(path: Path) -> str:
    """Hex sha256 of the file's bytes, read now (never a remembered value)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_default_info() -> dict[str, Any]:
    """The checked record of the default model (:data:`INFO_KEYS`), or a
    :class:`CheckpointError` naming the file when it is missing or malformed."""
    from ..errors import DctqaError
    from ..fileio import read_json

    path = default_info_path()
    if not path.is_file():
        raise CheckpointError(f"no default no-reference model is installed: {str(path)!r} does not exist; "
                              f"{HOW_TO_PASS}")
    try:
        info = read_json(path, "the default model's record")
    except DctqaError as exc:
        raise CheckpointError(f"the default model's record is unusable ({exc}); {HOW_TO_PASS}") from None
    missing = [k for k in INFO_KEYS if not isinstance(info, dict) or k not in info]
    if missing or info.get("format") != INFO_FORMAT:
        raise CheckpointError(f"{str(path)!r} is not a default-model record of format {INFO_FORMAT} (missing "
                              f"{missing}, format {info.get('format') if isinstance(info, dict) else None!r}); "
                              f"{HOW_TO_PASS}")
    return info


def check_default() -> tuple[Path, dict[str, Any]]:
    """``(checkpoint path, record)`` of the default model after checking, without unpickling
    anything, that the checkpoint exists, is a regular file of at most :data:`MAX_BYTES` and of
    the recorded size, and has the recorded sha256 (:class:`CheckpointError` otherwise)."""
    info = read_default_info()
    path = default_model_path()
    if info["file"] != path.name:
        raise CheckpointError(f"{str(default_info_path())!r} describes {info['file']!r}, not {path.name!r}; "
                              f"{HOW_TO_PASS}")
    if not path.is_file():
        raise CheckpointError(f"the default model {str(path)!r} does not exist (its record does); {HOW_TO_PASS}")
    size = path.stat().st_size
    if size > MAX_BYTES or size != info["bytes"]:
        raise CheckpointError(f"the default model {str(path)!r} is {size} bytes; its record says {info['bytes']} "
                              f"and at most {MAX_BYTES} ship; {HOW_TO_PASS}")
    sha = _sha256(path)
    if sha != info["sha256"]:
        raise CheckpointError(f"the default model {str(path)!r} has sha256 {sha[:16]}..., its record "
                              f"{str(info['sha256'])[:16]}...: the file was altered or replaced; {HOW_TO_PASS}")
    return path, info


def default_options() -> dict[str, Any]:
    """The recommended ``patches`` and ``sampling`` of the default model (from its record)."""
    info = read_default_info()
    return {"patches": info["patches"], "sampling": info["sampling"]}


def load_default(device: str = "cpu", *, backbone: str | None = None,
                 metric_version: str | None = None) -> NRModel:
    """The default model, checked (:func:`check_default`), loaded weights-only
    (:meth:`NRModel.load`; ``backbone``/``metric_version`` refuse it as there), its
    provenance matched against the record, and with the record's ``patches``/``sampling`` as
    its :attr:`~NRModel.recommended` options; ``source`` says ``model: "default"``."""
    path, info = check_default()
    model = NRModel.load(path, backbone=backbone, metric_version=metric_version, device=device)
    prov = model.prov
    mine = {"metric_version": prov.metric_version, "backbone": prov.backbone,
            "backbone_sha256": prov.backbone_sha256, "target": prov.target}
    differ = sorted(k for k, v in mine.items() if str(info[k]) != str(v))
    if differ:
        raise CheckpointError(f"the default model {str(path)!r} and its record disagree on {differ}; {HOW_TO_PASS}")
    try:
        model.check_options(patches=info["patches"], sampling=info["sampling"])
    except Exception as exc:
        raise CheckpointError(f"{str(default_info_path())!r}: its patches/sampling cannot be used ({exc})") from None
    model.recommended = {"patches": info["patches"], "sampling": info["sampling"]}
    model.source = {"model": "default", "model_path": str(path), "model_sha256": info["sha256"]}
    return model


def _slim(checkpoint: str | os.PathLike) -> tuple[NRModel, dict, bytes]:
    """``(model, checkpoint dict, its bytes)`` of a trained, calibrated checkpoint without its
    training state, refused when uncalibrated or too large."""
    import torch

    model = NRModel.load(checkpoint)  # every check a checkpoint gets (metric version, weights, calibration)
    ck = read_checkpoint(checkpoint)
    if ck.get("calibration") is None:
        raise CheckpointError(f"{checkpoint}: it has no calibrated 90 % interval; the default model must have "
                              "one (`dctqa calibrate-nr MODEL --data DATA --from-folds FOLD.pt ...`)")
    ck = {k: v for k, v in ck.items() if k not in TRAINING_STATE}
    buf = io.BytesIO()
    torch.save(ck, buf)
    data = buf.getvalue()
    if len(data) > MAX_BYTES:
        raise CheckpointError(f"{checkpoint}: {len(data)} bytes without its training state; the default model "
                              f"may have at most {MAX_BYTES} (train a narrower --width)")
    return model, ck, data


def install(checkpoint: str | os.PathLike, *, patches: int | None = None, sampling: str | None = None,
            created: str | None = None) -> Path:
    """Install ``checkpoint`` (trained by ``dctqa train-nr`` and calibrated) as the default
    model: write ``nr-default.pt`` (without optimiser/scheduler state, at most
    :data:`MAX_BYTES`) and ``nr-default.json`` into :data:`MODELS_DIR`, both or neither, then
    load them back through :func:`load_default`. ``patches``/``sampling``: the recommendation
    the record carries (default :data:`~dctqa.nr.predict.DEFAULT_OPTIONS`); ``created``: ISO
    time (default now, UTC). Returns the installed checkpoint's path."""
    from .. import __version__
    from ..fileio import OutputSet, file_sha256

    model, ck, data = _slim(checkpoint)
    rec = {"patches": DEFAULT_OPTIONS["patches"] if patches is None else patches,
           "sampling": DEFAULT_OPTIONS["sampling"] if sampling is None else sampling}
    model.check_options(**rec)
    prov, cal = ck["provenance"], ck["calibration"]
    made = {k: cal.get(k) for k in ("patches", "sampling")}
    if any(v is not None for v in made.values()) and made != rec:
        raise CheckpointError(f"{checkpoint}: its interval was calibrated on {made['patches']} {made['sampling']} "
                              f"patch(es), but the record would recommend {rec['patches']} {rec['sampling']}; "
                              f"calibrate it for that placement (calibrate-nr --patches/--sampling)")
    info = {"format": INFO_FORMAT, "file": default_model_path().name, "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data), "metric_version": prov["metric_version"], "backbone": prov["backbone"],
            "backbone_sha256": prov["backbone_sha256"], "target": prov["target"],
            "created": created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model_card": MODEL_CARD, **rec, "split": (ck.get("train_config") or {}).get("split"),
            "epochs": ck.get("epoch"), "dctqa_version": __version__, "source_sha256": file_sha256(checkpoint),
            "calibration": {k: cal.get(k) for k in ("source", "quantile_z", "quantile_log_q", "frames", "videos",
                                                     "patches", "sampling", "leave_one_fold_out")}}
    with OutputSet(inputs=[checkpoint]) as out:
        MODELS_DIR.mkdir(parents=True, exist_ok=True)
        out.add(default_model_path())
        out.add(default_info_path())
        out.write_bytes(default_model_path(), data)
        out.write_text(default_info_path(), json.dumps(info, indent=2) + "\n")
    load_default()
    return default_model_path()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dctqa.nr.default --install CHECKPOINT [--patches N] [--sampling S]``, or
    ``--check`` (verify the installed files). Exit status 0, or 2 with ``error: ...``."""
    from ..errors import DctqaError
    from .sampling import SAMPLINGS

    p = argparse.ArgumentParser(prog="python -m dctqa.nr.default", description="the shipped default NR model")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--install", metavar="CHECKPOINT", help="install a trained, calibrated checkpoint")
    g.add_argument("--check", action="store_true", help="check the installed model against its record")
    p.add_argument("--patches", type=int, default=None, help=f"recommended patches (default {DEFAULT_OPTIONS['patches']})")
    p.add_argument("--sampling", choices=SAMPLINGS, default=None,
                   help=f"recommended placement (default {DEFAULT_OPTIONS['sampling']})")
    args = p.parse_args(argv)
    try:
        if args.install:
            install(args.install, patches=args.patches, sampling=args.sampling)
        model = load_default()
    except DctqaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = read_default_info()
    print(f"default model {default_model_path()} ({info['bytes']} bytes, sha256 {info['sha256'][:12]}, metric "
          f"v{model.prov.metric_version}, {model.prov.backbone}; patches {info['patches']}, {info['sampling']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
