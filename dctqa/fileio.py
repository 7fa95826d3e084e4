"""Files written atomically, output paths checked up front, and files identified by content.

Every output dctqa writes goes through here: a temporary file in the target folder, then
``os.replace``, so an interrupted or failed run never leaves a partial file.

Output path rules (:func:`check_output_path`, applied before any work starts):

* the target must be a regular file or not exist yet; a directory, device node, FIFO or
  socket is refused with an :class:`OutputError` (dctqa never replaces one, so
  ``--json /dev/null`` run as root cannot destroy the device file). To stream a log to
  the terminal, write a file and ``cat`` it.
* a symbolic link is followed: the file it points to is replaced atomically and the link
  itself is kept (a dangling link is refused).
* the target must not be one of the run's inputs, by path, symlink or hard link (same
  device and inode), and two outputs of one run must not be the same file;
* the folder must exist (unless the caller creates it) and be writable, the name must fit
  the file system's limit (``NAME_MAX``), and nothing under ``/proc`` or ``/sys`` is written.

New files get mode ``0o666`` minus the process umask (what ``open(path, "w")`` gives);
a replaced file keeps its mode. :class:`OutputSet` groups a run's outputs so they all
appear, or none does.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import signal
import stat
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

from .errors import InputError, OutputError

_FORBIDDEN_ROOTS = ("/proc", "/sys")
_umask_lock = threading.Lock()


def _umask() -> int:
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _top(path: str) -> str:
    parts = Path(path).parts
    return "/" + parts[1] if len(parts) > 1 else "/"


def _resolve_target(path: Path) -> Path:
    """``path`` with symbolic links followed; refuses dangling links, ``/proc``, ``/sys`` and
    links in ``/dev`` (``/dev/stdout`` and the like)."""
    _check_name_length(path)
    given = os.path.abspath(path)
    real = Path(os.path.realpath(path))
    for top in (_top(given), _top(str(real))):
        if top in _FORBIDDEN_ROOTS:
            raise OutputError(f"output path {str(path)!r} is under {top}; dctqa writes only regular files "
                              f"in ordinary folders")
    if path.is_symlink():
        if _top(given) == "/dev":
            raise OutputError(f"output path {str(path)!r} is a link in /dev (a stream or device); dctqa writes "
                              f"only regular files: write a file and read it from there")
        if not real.exists():
            raise OutputError(f"output path {str(path)!r} is a symbolic link to a missing file "
                              f"({os.readlink(path)!r}); dctqa does not create files through dangling links")
        return real
    return path


def check_output_path(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                      make_parents: bool = False) -> Path:
    """Check that ``path`` may be written (rules in this module's docstring) and return the
    file that will actually be replaced (a symlink's target). Raises :class:`OutputError`."""
    if path is None or str(path) == "":
        raise OutputError("empty output path")
    p = Path(path)
    real = _resolve_target(p)
    try:
        st = real.stat()
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot use output path {str(p)!r}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(f"output path {str(p)!r} is a directory, expected a file name")
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise OutputError(f"output path {str(p)!r} is {kind}; dctqa only writes regular files (it never "
                              f"replaces a device, FIFO or socket)")
        for src in inputs:
            try:
                if _same_file(st, os.stat(src)):
                    raise OutputError(f"output path {str(p)!r} is the input {str(src)!r} (same file); "
                                      f"refusing to overwrite an input")
            except OSError:
                continue
    folder = real.parent
    if not folder.is_dir():
        if not make_parents:
            raise OutputError(f"output folder {str(folder)!r} does not exist")
    else:
        _check_folder_writable(folder, p)
    return real


def _check_folder_writable(folder: Path, shown: Path) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".dctqa-probe.", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write into the folder of {str(shown)!r} ({str(folder)!r}): "
                          f"{exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def _check_name_length(path: Path) -> None:
    folder = path.parent if path.parent.is_dir() else Path("/")
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        if len(os.fsencode(part)) > limit:
            raise OutputError(f"output path {str(path)!r}: the name {part[:24]!r}... is "
                              f"{len(os.fsencode(part))} bytes long; this file system allows at most {limit}")


def _tmp_prefix(name: str) -> str:
    """Prefix of a temporary name beside ``name``, short enough for any NAME_MAX (255)."""
    return f".{name[:64]}."


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp", make_parents: bool = True,
                inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block succeeds
    and is deleted when it raises (also on ``KeyboardInterrupt`` and the CLI's SIGTERM).

    ``path`` is checked with :func:`check_output_path` first (a symlink's target is replaced,
    a device/FIFO/directory/input is refused). ``make_parents=False`` makes a missing
    folder an :class:`OutputError` (for paths users type). The final file gets mode
    ``0o666 & ~umask`` (or keeps the mode of the file it replaces).
    """
    target = check_output_path(path, inputs, make_parents)
    if make_parents:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder {str(target.parent)!r}: {exc.strerror or exc}") from None
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target.name), suffix=suffix, dir=target.parent)
        os.close(fd)
        os.chmod(tmp, mode)
        yield Path(tmp)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check that folder ``path`` may hold outputs: not under ``/proc`` or ``/sys``, not an
    existing file, writable if it exists (else its nearest existing parent must be a
    writable folder). Raises :class:`OutputError`; creates nothing."""
    if path is None or str(path) == "":
        raise OutputError("empty output folder path")
    p = Path(path)
    _resolve_target(p)
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"output folder {str(p)!r} exists and is not a folder")
        _check_folder_writable(p, p)
        return p
    parent = next((q for q in p.absolute().parents if q.exists()), Path("/"))
    if not parent.is_dir():
        raise OutputError(f"cannot create output folder {str(p)!r}: {str(parent)!r} is not a folder")
    _check_folder_writable(parent, p)
    return p


class OutputSet:
    """The output files of one run: checked before the work starts, written at the end,
    all of them or none.

    ``add`` checks a path now (:func:`check_output_path`, plus: no two outputs are one
    file); ``staged``/``write_text``/``write_bytes`` write to a temporary file beside the
    target; ``commit`` moves every staged file into place with SIGINT/SIGTERM held back;
    ``abort`` (called by ``__exit__`` on any exception, including ``KeyboardInterrupt``
    and the CLI's SIGTERM) deletes the temporary files and the folders this set created.
    """

    def __init__(self, inputs: Iterable[str | os.PathLike] = ()) -> None:
        self.inputs = [Path(p) for p in inputs if p is not None]
        self._targets: dict[str, Path] = {}
        self._staged: list[tuple[Path, Path]] = []
        self._created_dirs: list[tuple[Path, bool]] = []

    def add(self, path: str | os.PathLike, make_parents: bool = False) -> Path:
        """Check ``path`` as an output of this run; returns the file that will be replaced."""
        target = check_output_path(path, self.inputs, make_parents)
        for shown, other in self._targets.items():
            if os.path.abspath(other) == os.path.abspath(target) or _existing_same(other, target):
                raise OutputError(f"output paths {shown!r} and {str(path)!r} are the same file")
        self._targets[str(path)] = target
        return target

    def make_dir(self, path: str | os.PathLike, keep_work: bool = False) -> Path:
        """Create folder ``path`` (and parents); the ones created here are removed by
        :meth:`abort`. ``keep_work``: remove them only while they hold no file (for resumable
        commands, whose finished steps stay for ``--resume``; empty folders still go)."""
        p = check_output_dir(path)
        missing = [q for q in [p, *p.parents] if not q.exists()]
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create folder {str(p)!r}: {exc.strerror or exc}") from None
        if missing:
            self._created_dirs.append((missing[-1], keep_work))
        _check_folder_writable(p, p)
        return p

    def temp(self, path: str | os.PathLike, suffix: str = ".tmp") -> Path:
        """A new empty temporary file beside output ``path`` (added if it was not), moved onto
        ``path`` by :meth:`commit`, deleted by :meth:`abort`."""
        target = self._targets.get(str(path)) or self.add(path)
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        try:
            fd, name = tempfile.mkstemp(prefix=_tmp_prefix(target.name), suffix=suffix, dir=target.parent)
        except OSError as exc:
            raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
        os.close(fd)
        tmp = Path(name)
        self._staged.append((tmp, target))
        try:
            os.chmod(tmp, mode)
        except OSError:
            self.discard(tmp)
            raise
        return tmp

    def discard(self, tmp: Path) -> None:
        """Delete temporary file ``tmp`` (from :meth:`temp`) and forget it."""
        tmp.unlink(missing_ok=True)
        self._staged = [(t, target) for t, target in self._staged if t != tmp]

    @contextmanager
    def staged(self, path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
        """A temporary file for output ``path`` (see :meth:`temp`); deleted at once if the
        block raises."""
        tmp = self.temp(path, suffix)
        try:
            yield tmp
        except BaseException:
            self.discard(tmp)
            raise

    def write_text(self, path: str | os.PathLike, text: str) -> None:
        """Stage ``text`` (UTF-8) for ``path``."""
        with self.staged(path) as tmp:
            _write(tmp, text.encode("utf-8"))

    def write_bytes(self, path: str | os.PathLike, data: bytes) -> None:
        """Stage ``data`` for ``path``."""
        with self.staged(path) as tmp:
            _write(tmp, data)

    def commit(self) -> None:
        """Move every staged file into place (signals held back meanwhile)."""
        held = _hold_signals()
        placed: list[Path] = []
        try:
            for tmp, target in self._staged:
                existed = target.exists()
                os.replace(tmp, target)
                if not existed:
                    placed.append(target)
            self._staged.clear()
        except OSError as exc:
            for target in placed:
                target.unlink(missing_ok=True)
            self.abort()
            raise OutputError(f"cannot write the outputs: {exc.strerror or exc}") from None
        finally:
            _release_signals(held)

    def abort(self) -> None:
        """Delete the staged temporary files and the folders this set created."""
        import shutil

        for tmp, _ in self._staged:
            tmp.unlink(missing_ok=True)
        self._staged.clear()
        for d, keep_work in reversed(self._created_dirs):
            if not keep_work:
                shutil.rmtree(d, ignore_errors=True)
            elif not any(q.is_file() or q.is_symlink() for q in d.rglob("*")):
                shutil.rmtree(d, ignore_errors=True)
        self._created_dirs.clear()

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _existing_same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file (hard links)."""
    try:
        return _same_file(a.stat(), b.stat())
    except OSError:
        return False


def _write(path: Path, data: bytes) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


_HELD = {signal.SIGINT, signal.SIGTERM}


def _hold_signals():
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)


def _release_signals(previous) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


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
        atomic_write_text(memo_file, strict_json({"path": key[0], "size": key[1], "mtime_ns": key[2],
                                                  "sha256": digest}))
    return digest


def json_safe(obj: object) -> object:
    """``obj`` with every undefined number (NaN, +-inf; Python or NumPy floats) replaced by
    ``None``, through dicts, lists and tuples (tuples become lists); anything else as is."""
    if isinstance(obj, numbers.Real) and not isinstance(obj, numbers.Integral):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def strict_json(obj: object, **options) -> str:
    """The one JSON writer for files dctqa writes: ``json.dumps`` of :func:`json_safe` (``obj``)
    with ``allow_nan=False``, so no ``NaN``/``Infinity`` token is ever written (undefined numbers
    become ``null``). ``options``: ``json.dumps``'s (``indent``, ``sort_keys``, ``default``)."""
    return json.dumps(json_safe(obj), allow_nan=False, **options)


def _regular_input(path: str | os.PathLike, what: str) -> Path:
    """``Path(path)``, refused (:class:`InputError`) when it exists and is not a regular file:
    reading a FIFO or a device could wait forever."""
    p = Path(path)
    if p.exists() and not p.is_file():
        kind = "a folder" if p.is_dir() else "not a regular file (a FIFO, socket or device)"
        raise InputError(f"{str(p)!r} is {kind}; expected {what}")
    return p


def read_json(path: str | os.PathLike, what: str) -> object:
    """The JSON document in file ``path`` (``what`` names it in errors, e.g. "an nr-data
    dataset.json"). Raises :class:`InputError` for a missing or unreadable file, bytes that
    are not UTF-8 text, or text that is not JSON."""
    p = _regular_input(path, what)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{str(p)!r} does not exist (expected {what})") from None
    except UnicodeDecodeError:
        raise InputError(f"{str(p)!r} is not text (expected {what})") from None
    except OSError as exc:
        raise InputError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError(f"{str(p)!r} is not valid JSON ({exc}); expected {what}") from None


def read_csv_rows(path: str | os.PathLike, what: str, required: Iterable[str] = ()) -> list[dict[str, str]]:
    """The rows of CSV file ``path`` as dicts of strings, header first; ``required`` columns
    must all be in the header. Raises :class:`InputError` (naming ``what`` was expected) for a
    missing, unreadable, non-text or malformed file, or missing columns."""
    import csv

    p = _regular_input(path, what)
    try:
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise InputError(f"{str(p)!r} does not exist (expected {what})") from None
    except UnicodeDecodeError:
        raise InputError(f"{str(p)!r} is not text (expected {what})") from None
    except csv.Error as exc:
        raise InputError(f"{str(p)!r} is not a readable CSV file ({exc}); expected {what}") from None
    except OSError as exc:
        raise InputError(f"cannot read {str(p)!r}: {exc.strerror or exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{str(p)!r} lacks the column(s) {missing} (has {header[:12]}); expected {what}")
    if any(None in r or any(v is None for v in r.values()) for r in rows):
        bad = next(i for i, r in enumerate(rows) if None in r or any(v is None for v in r.values()))
        raise InputError(f"{str(p)!r} row {bad + 2} has a different number of cells than the header; "
                         f"expected {what}")
    return rows


def parse_number(text: str | None, kind: type = float, *, where: str = "", empty: object = None) -> object:
    """``kind(text)`` for a cell read from a file (``kind``: ``int`` or ``float``); ``empty``
    for an empty or absent cell when given, else an error. Raises :class:`InputError` naming
    ``where`` (e.g. "'labels.csv' row 3, column 'q'") for text that is not such a number."""
    if text is None or text == "":
        if empty is not None:
            return empty
        raise InputError(f"{where}: empty cell, expected {'an integer' if kind is int else 'a number'}")
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {str(text)[:40]!r} is not {'an integer' if kind is int else 'a number'}") from None
