"""Content hashes of files, computed once per (path, size, mtime)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from ..errors import InputError

_memo: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def _stat_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if not path.is_file():
        raise InputError(f"{str(path)!r} is not a regular file")
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def file_sha256(path: str | os.PathLike, memo_dir: str | os.PathLike | None = None) -> str:
    """Hex sha256 of the file's bytes.

    Remembered in this process by (absolute path, size, mtime); with ``memo_dir`` also on
    disk (one small JSON per path), so later processes skip re-reading unchanged files.
    """
    path = Path(path)
    key = _stat_key(path)
    with _lock:
        hit = _memo.get(key)
    if hit is not None:
        return hit
    memo_file = None
    if memo_dir is not None:
        name = hashlib.sha1(key[0].encode()).hexdigest() + ".json"
        memo_file = Path(memo_dir) / "file-hashes" / name
        try:
            rec = json.loads(memo_file.read_text())
            if [rec["path"], rec["size"], rec["mtime_ns"]] == list(key):
                with _lock:
                    _memo[key] = rec["sha256"]
                return rec["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _lock:
        _memo[key] = digest
    if memo_file is not None:
        atomic_write_text(memo_file, json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2],
                                                 "sha256": digest}))
    return digest
