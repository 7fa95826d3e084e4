"""Files written atomically and files identified by content.

Every output dctqa writes goes through here: a temporary file in the target folder,
then ``os.replace``, so an interrupted or failed run never leaves a partial file.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import InputError


def shared_dir() -> Path:
    """The shared data folder (videos, YOLOX-Nano): ``$DCTQA_SHARED``, else ``../shared``
    beside this checkout."""
    env = os.environ.get("DCTQA_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds
    and is deleted when it raises. ``make_parents=False`` makes a missing folder an
    :class:`InputError` (for paths users type)."""
    p = Path(path)
    folder = p.parent
    if p.is_dir():
        raise InputError(f"output path {str(p)!r} is a directory, expected a file name")
    if make_parents:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise InputError(f"output folder {str(folder)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", make_parents: bool = True) -> Iterator[IO]:
    """Open a file for writing (``"w"`` text, ``"wb"`` bytes) that appears at ``path`` only if the block succeeds."""
    with atomic_path(path, make_parents=make_parents) as tmp:
        kwargs = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
        with open(tmp, mode, **kwargs) as f:
            yield f


def atomic_write_text(path: str | os.PathLike, text: str, make_parents: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_output(path, "w", make_parents) as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, make_parents: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path, "wb", make_parents) as f:
        f.write(data)


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
