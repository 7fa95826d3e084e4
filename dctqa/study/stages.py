"""Named, cached pipeline stages: a result is stored under a hash of everything that
determines it (input content hashes + settings) and reused by any later run.

Layout: ``<root>/<stage>/<sha256 of the key>.npz`` (arrays) or ``.json`` (documents);
each file embeds its key, so a hash collision or a foreign file is recomputed, never
trusted. Files are written atomically (temporary file + ``os.replace``).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..fileio import atomic_write_bytes, strict_json


def key_hash(key: dict) -> str:
    """sha256 hex of the canonical JSON of ``key`` (sorted keys)."""
    return hashlib.sha256(strict_json(key, sort_keys=True, default=str).encode()).hexdigest()


class StageCache:
    """Stage results under ``root``; counts hits and misses per stage for the report, and
    names the stages a run skipped, with the reason (:meth:`skip`)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self.skipped: dict[str, str] = {}

    def skip(self, stage: str, why: str) -> None:
        """Record that ``stage`` did not run in this run, and why (for the report's stage line)."""
        self.skipped[stage] = why

    def _path(self, stage: str, key: dict, ext: str) -> Path:
        return self.root / stage / f"{key_hash(key)}.{ext}"

    def cached_arrays(self, stage: str, key: dict) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The stored (arrays, meta) of ``key`` (a hit), or ``None`` when absent or unreadable
        (counted as neither: :meth:`arrays` counts the miss when it computes)."""
        path = self._path(stage, key, "npz")
        want = strict_json(key, sort_keys=True, default=str)
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    if str(z["__key__"]) == want:
                        out = {k: z[k] for k in z.files if not k.startswith("__")}
                        meta = json.loads(str(z["__meta__"]))
                        self.hits[stage] = self.hits.get(stage, 0) + 1
                        return out, dict(meta, cached=True)
            except (OSError, ValueError, KeyError):
                pass
        return None

    def arrays(self, stage: str, key: dict, compute: Callable[[], dict[str, np.ndarray]]
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Cached ``compute()`` -> (arrays, meta); meta holds ``seconds`` (of the first computation)
        and ``cached`` (whether this call reused it)."""
        return self.timed_arrays(stage, key, lambda: (compute(), None))

    def timed_arrays(self, stage: str, key: dict,
                     compute: Callable[[], tuple[dict[str, np.ndarray], dict[str, float] | None]]
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """:meth:`arrays` of a ``compute()`` that returns ``(arrays, timings)``: ``timings`` (seconds
        per part of its own work, or ``None``) is stored as meta ``timings`` beside ``seconds``."""
        hit = self.cached_arrays(stage, key)
        if hit is not None:
            return hit
        path = self._path(stage, key, "npz")
        want = strict_json(key, sort_keys=True, default=str)
        t0 = time.perf_counter()
        out, timings = compute()
        meta: dict[str, Any] = {"seconds": time.perf_counter() - t0}
        if timings is not None:
            meta["timings"] = dict(timings)
        buf = io.BytesIO()
        np.savez(buf, __key__=np.array(want), __meta__=np.array(strict_json(meta)), **out)
        atomic_write_bytes(path, buf.getvalue())
        self.misses[stage] = self.misses.get(stage, 0) + 1
        return out, dict(meta, cached=False)

    def _stored_document(self, stage: str, key: dict) -> dict | None:
        """The stored document of ``key`` (``{"key", "meta", "value"}``), or ``None`` (absent,
        unreadable, or another key's)."""
        path = self._path(stage, key, "json")
        want = json.loads(strict_json(key, sort_keys=True, default=str))
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
                if doc["key"] == want:
                    return doc
            except (OSError, ValueError, KeyError):
                pass
        return None

    def has_document(self, stage: str, key: dict) -> bool:
        """Whether :meth:`document` of ``key`` would reuse a stored result (counted as neither
        hit nor miss)."""
        return self._stored_document(stage, key) is not None

    def document(self, stage: str, key: dict, compute: Callable[[], Any],
                 seconds: float | None = None) -> tuple[Any, dict[str, Any]]:
        """Cached JSON-able ``compute()`` -> (value, meta) as :meth:`arrays`. The value is what the
        stored document holds (:func:`dctqa.fileio.strict_json`: undefined numbers are ``None``,
        tuples are lists), on the first call as on every later one. ``seconds``: the time the
        work took where it ran (a worker; ``compute`` only hands its result over), stored as
        meta ``seconds`` instead of ``compute``'s own time."""
        path = self._path(stage, key, "json")
        want = json.loads(strict_json(key, sort_keys=True, default=str))
        doc = self._stored_document(stage, key)
        if doc is not None:
            self.hits[stage] = self.hits.get(stage, 0) + 1
            return doc["value"], dict(doc["meta"], cached=True)
        t0 = time.perf_counter()
        value = compute()
        meta = {"seconds": time.perf_counter() - t0 if seconds is None else float(seconds)}
        text = strict_json({"key": want, "meta": meta, "value": value})
        atomic_write_bytes(path, text.encode())
        self.misses[stage] = self.misses.get(stage, 0) + 1
        return json.loads(text)["value"], dict(meta, cached=False)  # as a rerun reads it (NaN -> None)
