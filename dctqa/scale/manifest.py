"""The manifest of a ``score-many`` run: a CSV of ``ref,dist`` pairs (or a glob of videos).

Relative paths in a manifest are taken from the manifest's own folder, so a manifest and its
videos can move together. Columns beyond ``ref`` and ``dist`` are carried into every output.
"""
from __future__ import annotations

import glob as _glob
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..fileio import read_csv_rows

#: Names the outputs use themselves; a manifest column cannot take one.
RESERVED = ("ref", "dist", "frame", "dctqa", "implementation", "metric_version", "video", "dctqa_nr")


@dataclass(frozen=True)
class Pair:
    """One row of the manifest. ``ref`` / ``dist``: the paths as written (``dist`` is the video
    of a no-reference run, ``ref`` then empty); ``ref_path`` / ``dist_path``: resolved;
    ``extra``: the row's other columns; ``key``: a stable file-name-safe id of the pair."""

    key: str
    ref: str
    dist: str
    ref_path: str
    dist_path: str
    extra: dict = field(default_factory=dict)


def pair_key(ref: str, dist: str) -> str:
    """``<dist stem>-<12 hex>``: readable, unique per (ref, dist) text, safe as a file name."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(dist).stem)[:40] or "pair"
    digest = hashlib.sha256(f"{ref}\0{dist}".encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"{stem}-{digest}"


def _resolve(base: Path, text: str) -> str:
    p = Path(os.path.expanduser(text))
    return str(p if p.is_absolute() else base / p)


def read_manifest(path: str | os.PathLike) -> list[Pair]:
    """The pairs of a manifest CSV (header ``ref,dist[,...]``), in file order.

    Raises :class:`~dctqa.errors.InputError` for a missing or malformed manifest, an empty
    cell in ``ref``/``dist``, a reserved extra column name, no rows, or a pair listed twice.
    """
    rows = read_csv_rows(path, "manifest", required=("ref", "dist"))
    if not rows:
        raise InputError(f"manifest {str(path)!r} lists no pair (a header ref,dist and one row per pair)")
    extra_cols = [c for c in rows[0] if c not in ("ref", "dist")]
    bad = [c for c in extra_cols if c in RESERVED or not c]
    if bad:
        raise InputError(f"manifest {str(path)!r}: column name(s) {bad} are used by the outputs; rename them")
    base = Path(path).resolve().parent
    pairs, seen = [], {}
    for line, row in enumerate(rows, start=2):
        ref, dist = (row.get("ref") or "").strip(), (row.get("dist") or "").strip()
        if not ref or not dist:
            raise InputError(f"manifest {str(path)!r} line {line}: empty ref or dist cell")
        key = pair_key(ref, dist)
        if key in seen:
            raise InputError(f"manifest {str(path)!r} line {line}: the pair {ref!r}, {dist!r} is listed "
                             f"twice (first on line {seen[key]})")
        seen[key] = line
        pairs.append(Pair(key, ref, dist, _resolve(base, ref), _resolve(base, dist),
                          {c: row.get(c) or "" for c in extra_cols}))
    return pairs


def glob_videos(pattern: str) -> list[Pair]:
    """The files matching ``pattern`` (``**`` recurses), sorted, as no-reference "pairs"."""
    paths = sorted(p for p in _glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
    if not paths:
        raise InputError(f"--no-reference {pattern!r} matches no file")
    return [Pair(pair_key("", p), "", p, "", os.path.abspath(p)) for p in paths]
