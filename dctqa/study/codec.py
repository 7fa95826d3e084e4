"""H.264 encode sweeps (PyAV + libx264): the paper's CRF x bandwidth grid.

Each source is decoded once (:func:`dctqa.io.iter_frames`, RGB), converted once per
frame to yuv420p and fed to every variant's encoder.  A variant is CRF rate control,
optionally capped by x264's VBV (``vbv-maxrate`` / ``vbv-bufsize``): "capped CRF".

Default caps scale with the pixel rate.  A cap is given in bits per pixel (per frame),
``maxrate = bpp * width * height * fps`` bit/s, so one ladder binds on every resolution
and frame rate.  The shared videos at CRF 23 (preset medium) used 0.019 (bottle, easy
content, 30 fps), 0.071 (car) and 0.124 (vtest) bit/pixel; the default ladder
:data:`DEFAULT_CAP_BPP` = 0.0025, 0.005, 0.01, 0.02 bit/pixel (vtest: 11, 22, 44, 88
kbit/s) is chosen so that caps bind on all of them.  Measured on the full videos: the
loosest cap (0.02) lowers the bitrate at CRF 23 on every video (vtest 576 -> 86, car
308 -> 65, bottle 176 -> 137 kbit/s) and the 0.005 cap binds at CRF 23-41 on every video;
at CRF 47 most caps no longer bind (those variants then equal the uncapped one).
Absolute caps (kbit/s) can be given instead.

Every written variant is decoded again and checked: it must hold exactly the source's
number of frames with strictly increasing, gap-free timestamps (a dropped or duplicated
frame raises :class:`~dctqa.errors.VideoError`).  Its real bitrate is the sum of the
encoded video packets' sizes (bits) divided by the duration ``frames / fps``.
Files appear atomically and together (temporary files in the same folder, then ``os.replace``
of all of them once every variant has been checked).
"""
from __future__ import annotations

import collections
import json
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..errors import InputError, VideoError
from ..fileio import OutputSet, atomic_path, strict_json
from ..values import is_int, is_real

#: The paper's CRF values.
DEFAULT_CRFS: tuple[int, ...] = (23, 29, 35, 41, 47)
#: Default VBV caps in bits per pixel per frame (see the module docstring).
DEFAULT_CAP_BPP: tuple[float, ...] = (0.0025, 0.005, 0.01, 0.02)
#: x264 presets accepted by :class:`EncodeSettings`.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
           "veryslow", "placebo")
MANIFEST = "variants.json"
#: Largest caps accepted: 10 Gbit/s, and 24 bit/pixel (uncompressed 8-bit RGB); above them a
#: cap cannot bind. Longest VBV buffer: 60 s.
MAX_CAP_KBPS = 1e7
MAX_CAP_BPP = 24.0
MAX_BUFSIZE_S = 60.0


@dataclass(frozen=True)
class Variant:
    """One encoded version of a source.

    name: file stem, e.g. ``crf35`` or ``crf35_cap44k``; crf: 0..51;
    maxrate_kbps: the VBV cap in kbit/s, ``None`` for uncapped CRF;
    path: the .mp4 file; bitrate_kbps: measured video-stream bitrate (kbit/s);
    frames: decoded frame count (equals the source's).
    """

    name: str
    crf: int
    maxrate_kbps: float | None
    path: Path
    bitrate_kbps: float
    frames: int
    cap_bpp: float | None = None


@dataclass(frozen=True)
class EncodeSettings:
    """What to encode.

    crfs: CRF values (0..51). cap_bpp: VBV caps in bit/pixel/frame, or caps_kbps: absolute
    caps in kbit/s (takes precedence when given). include_uncapped: also write plain CRF.
    preset: x264 preset. gop: keyframe interval in frames (``None``: x264's default, 250).
    bufsize_s: VBV buffer = ``bufsize_s * maxrate``. threads: x264 threads per encoder
    (0 = x264's automatic choice; with it, VBV-capped variants differ slightly from run to
    run, x264's rate control depending on thread timing; ``threads=1`` makes every variant
    bit-reproducible, more slowly: benchmarks/RESULTS.md). max_frames: encode only the
    first frames (tests).
    """

    crfs: tuple[int, ...] = DEFAULT_CRFS
    cap_bpp: tuple[float, ...] = DEFAULT_CAP_BPP
    caps_kbps: tuple[float, ...] | None = None
    include_uncapped: bool = True
    preset: str = "medium"
    gop: int | None = None
    bufsize_s: float = 1.0
    threads: int = 0
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if not self.crfs:
            raise InputError("at least one CRF value is needed")
        for c in self.crfs:
            if not is_int(c) or not 0 <= c <= 51:
                raise InputError(f"CRF must be an integer in 0..51, got {c!r}")
        if self.preset not in PRESETS:
            raise InputError(f"unknown x264 preset {self.preset!r}; expected one of {PRESETS}")
        if self.caps_kbps is not None:
            _check_caps(self.caps_kbps, MAX_CAP_KBPS, "kbit/s")
        else:
            _check_caps(self.cap_bpp, MAX_CAP_BPP, "bit/pixel")
        if self.gop is not None and not (is_int(self.gop) and self.gop >= 1):
            raise InputError(f"gop must be an integer >= 1 frame, got {self.gop!r}")
        if not (is_real(self.bufsize_s) and 0 < self.bufsize_s <= MAX_BUFSIZE_S):
            raise InputError(f"bufsize_s must be a number of seconds in (0, {MAX_BUFSIZE_S:g}], got {self.bufsize_s!r}")
        if not (is_int(self.threads) and self.threads >= 0):
            raise InputError(f"threads must be an integer >= 0 (0: x264's choice), got {self.threads!r}")
        if self.max_frames is not None and not (is_int(self.max_frames) and self.max_frames >= 1):
            raise InputError(f"max_frames must be an integer >= 1, got {self.max_frames!r}")

    def to_dict(self) -> dict:
        """JSON-able settings (used in cache keys)."""
        return asdict(self)


def _check_caps(caps: Sequence[float], most: float, unit: str) -> None:
    for v in caps:
        if not (is_real(v) and 0 < v <= most):
            raise InputError(f"bandwidth caps must be finite numbers in (0, {most:g}] {unit}, got {v!r}")


@dataclass(frozen=True)
class _Plan:
    name: str
    crf: int
    maxrate_kbps: float | None
    cap_bpp: float | None


def cap_kbps(width: int, height: int, fps: float, bpp: float) -> float:
    """VBV cap in kbit/s for ``bpp`` bits per pixel per frame at ``width x height`` and ``fps``."""
    return bpp * width * height * fps / 1000.0


def plan_variants(settings: EncodeSettings, width: int, height: int, fps: float) -> list[_Plan]:
    """Names and rate-control settings of every variant, in a fixed order (CRF, then cap)."""
    plans: list[_Plan] = []
    for crf in settings.crfs:
        if settings.include_uncapped:
            plans.append(_Plan(f"crf{crf}", crf, None, None))
        if settings.caps_kbps is not None:
            caps = [(float(k), None) for k in settings.caps_kbps]
        else:
            caps = [(cap_kbps(width, height, fps, b), float(b)) for b in settings.cap_bpp]
        for kbps, bpp in caps:
            plans.append(_Plan(f"crf{crf}_cap{_kbps_label(kbps)}k", crf, kbps, bpp))
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise InputError(f"two variants would share a name: {names}; use distinct caps")
    return plans


def _kbps_label(kbps: float) -> str:
    return f"{kbps:.0f}" if kbps >= 10 else f"{kbps:.1f}".replace(".", "p")


def _x264_params(plan: _Plan, settings: EncodeSettings) -> str:
    parts = []
    if plan.maxrate_kbps is not None:
        maxrate = max(1, int(round(plan.maxrate_kbps)))
        bufsize = max(1, int(round(plan.maxrate_kbps * settings.bufsize_s)))
        parts += [f"vbv-maxrate={maxrate}", f"vbv-bufsize={bufsize}"]
    if settings.gop is not None:
        parts += [f"keyint={settings.gop}", f"min-keyint={min(settings.gop, max(1, settings.gop // 10))}"]
    return ":".join(parts)


class _Encoder:
    """One libx264 output written to temporary file ``tmp`` (moved onto ``path`` later)."""

    def __init__(self, plan: _Plan, path: Path, tmp: Path, settings: EncodeSettings, width: int, height: int,
                 rate: Fraction) -> None:
        import av

        self.plan, self.path, self.tmp = plan, path, tmp
        self.bytes = 0
        self.count = 0
        options = {"crf": str(plan.crf), "preset": settings.preset}
        params = _x264_params(plan, settings)
        if params:
            options["x264-params"] = params
        self.container = av.open(str(self.tmp), mode="w", format="mp4")
        try:
            self.stream = self.container.add_stream("libx264", rate=rate, options=options)
        except Exception:
            self.container.close()
            raise
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.time_base = Fraction(1, 1) / rate
        self.stream.codec_context.thread_count = settings.threads

    def send(self, frame) -> None:
        for packet in self.stream.encode(frame):
            self.bytes += packet.size
            self.container.mux(packet)
        self.count += 1 if frame is not None else 0

    def finish(self) -> None:
        self.send(None)
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass


def count_frames(path: str | os.PathLike) -> tuple[int, bool]:
    """Decode ``path`` and return (frame count, timestamps strictly increase with no gap).

    Gap-free means consecutive presentation timestamps differ by exactly one frame
    duration, so a dropped or duplicated frame shows.  Raises :class:`VideoError`.
    """
    import av

    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{str(p)!r}: no such file")
    try:
        with av.open(str(p)) as c:
            if not c.streams.video:
                raise VideoError(f"{str(p)!r} has no video stream")
            s = c.streams.video[0]
            rate = s.average_rate or s.guessed_rate
            step = None if not rate else Fraction(1, 1) / Fraction(rate) / s.time_base
            n, ok, last = 0, True, None
            for frame in c.decode(s):
                pts = frame.pts
                if pts is None or (last is not None and (step is None or pts - last != step)):
                    ok = False
                last = pts
                n += 1
            return n, ok
    except av.error.FFmpegError as exc:
        raise VideoError(f"{str(p)!r}: cannot decode ({exc.strerror or exc})") from None


def stream_bitrate_kbps(path: str | os.PathLike, frames: int, fps: float) -> float:
    """Bits of the first video stream's packets divided by ``frames / fps`` seconds, in kbit/s."""
    import av

    total = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for packet in c.demux(s):
            if packet.size:
                total += packet.size
    return total * 8.0 / (frames / fps) / 1000.0


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def encode_sweep(src: str | os.PathLike, out_dir: str | os.PathLike,
                 settings: EncodeSettings = EncodeSettings(),
                 progress: Callable[[int], None] | None = None,
                 verified: Callable[[Variant], None] | None = None) -> list[Variant]:
    """Encode every variant of ``settings`` for ``src`` into ``out_dir`` (created if needed).

    Files: ``out_dir/<name>.mp4`` per variant and ``out_dir/variants.json`` (the returned
    list plus the settings).  ``progress(n)`` is called after each source frame with the
    number of frames just encoded (1) into all variants at once; ``verified(variant)``
    after each variant has been decoded again and checked (one call per variant, before any
    file is in place).  The files appear together at the end, or none of them: a failure or
    signal removes every temporary file and the folders this call created; no output may be
    ``src`` itself.  Width and height must be even (yuv420p);
    odd sizes raise :class:`InputError` rather than being padded, because a padded variant
    would no longer align pixel-for-pixel with its reference.
    Raises :class:`VideoError` for unreadable sources, sources with no frame, and variants
    whose decoded frame count or timestamps do not match the source.
    """
    from ..io import probe

    info = probe(src)
    if info.is_image:
        raise VideoError(f"{str(src)!r} is a still image; encode sweeps need a video")
    if info.width % 2 or info.height % 2:
        raise InputError(f"{str(src)!r} is {info.width}x{info.height}; yuv420p H.264 needs even width "
                         f"and height. Crop the source first (e.g. ffmpeg -vf crop=trunc(iw/2)*2:trunc(ih/2)*2)")
    fps = info.fps or 25.0
    rate = _rate(fps)
    plans = plan_variants(settings, info.width, info.height, float(rate))
    for plan in plans:  # every rate-control setting is formed before the first file
        _x264_params(plan, settings)
    with OutputSet(inputs=[src]) as outputs:  # every file or none; never the source
        out = outputs.make_dir(out_dir)
        targets = [out / f"{plan.name}.mp4" for plan in plans]
        for path in [*targets, out / MANIFEST]:
            outputs.add(path)
        variants = _encode_all(src, info, plans, targets, outputs, settings, rate, progress, verified)
        outputs.write_text(out / MANIFEST, manifest_text(variants, settings, src, float(rate)))
    return variants


def _encode_all(src, info, plans: list[_Plan], targets: list[Path], outputs: OutputSet, settings: EncodeSettings,
                rate: Fraction, progress, verified) -> list[Variant]:
    """Encode, decode again and check every variant into the temporary files of ``outputs``."""
    import av

    from ..io import iter_frames

    encoders: list[_Encoder] = []
    n = 0
    try:
        for plan, path in zip(plans, targets):
            encoders.append(_Encoder(plan, path, outputs.temp(path, suffix=".mp4.tmp"), settings, info.width,
                                     info.height, rate))
        for rgb in iter_frames(src, max_frames=settings.max_frames):
            if rgb.shape[:2] != (info.height, info.width):
                raise VideoError(f"{str(src)!r}: frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, the stream "
                                 f"says {info.width}x{info.height}; size changes are not supported")
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            frame.pts = n
            frame.time_base = Fraction(1, 1) / rate
            for enc in encoders:
                enc.send(frame)
            n += 1
            if progress is not None:
                progress(1)
        for enc in encoders:
            enc.finish()
    except BaseException:
        for enc in encoders:
            enc.abort()
        raise
    if n == 0:  # iter_frames raises first; kept as a guard
        raise VideoError(f"{str(src)!r} holds no decodable frame")
    variants = []
    for enc in encoders:
        got, gap_free = count_frames(enc.tmp)
        if got != n or not gap_free:
            raise VideoError(f"variant {enc.plan.name}: decoded {got} frames "
                             f"({'gap-free' if gap_free else 'dropped/duplicated timestamps'}) from "
                             f"{n} source frames; the encoder must keep every frame once, in order")
        kbps = stream_bitrate_kbps(enc.tmp, n, float(rate))
        variants.append(Variant(enc.plan.name, enc.plan.crf, enc.plan.maxrate_kbps, enc.path, kbps, n,
                                enc.plan.cap_bpp))
        if verified is not None:
            verified(variants[-1])
    return variants


def manifest_text(variants: Sequence[Variant], settings: EncodeSettings, src: str | os.PathLike,
                  fps: float) -> str:
    """The ``variants.json`` document listing ``variants`` (paths relative to its folder)."""
    doc = {"source": str(src), "fps": fps, "settings": settings.to_dict(),
           "variants": [dict(asdict(v), path=v.path.name) for v in variants]}
    return strict_json(doc, indent=1)


def read_manifest(path: str | os.PathLike) -> list[Variant]:
    """Variants listed in a ``variants.json`` written by :func:`encode_sweep`."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
        return [Variant(name=v["name"], crf=int(v["crf"]), maxrate_kbps=v["maxrate_kbps"],
                        path=p.parent / v["path"], bitrate_kbps=float(v["bitrate_kbps"]),
                        frames=int(v["frames"]), cap_bpp=v.get("cap_bpp")) for v in doc["variants"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VideoError(f"{str(p)!r}: not a readable variant manifest ({exc})") from None


def parse_floats(values: Iterable[str] | str) -> tuple[float, ...]:
    """``"0.1,0.2"`` or ``["0.1", "0.2"]`` -> ``(0.1, 0.2)``; raises :class:`InputError`."""
    items = values.split(",") if isinstance(values, str) else list(values)
    try:
        return tuple(float(v) for v in items if str(v).strip())
    except ValueError:
        raise InputError(f"expected comma-separated numbers, got {values!r}") from None


def write_lossless(frames: Iterable, path: str | os.PathLike, fps: float) -> int:
    """Write ``H x W x 3`` uint8 RGB frames losslessly (FFV1, bgr0, Matroska) to ``path``,
    atomically; decoding ``path`` as RGB gives the same frames bit for bit. Returns the count.
    """
    import av

    rate = _rate(fps)
    n = 0
    with atomic_path(path, suffix=".mkv.tmp") as tmp:
        with av.open(str(tmp), "w", format="matroska") as c:
            s = c.add_stream("ffv1", rate=rate)
            s.time_base = Fraction(1, 1) / rate
            for rgb in frames:
                if n == 0:
                    s.width, s.height, s.pix_fmt = rgb.shape[1], rgb.shape[0], "bgr0"
                vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
                vf.pts = n
                vf.time_base = s.time_base
                for pk in s.encode(vf):
                    c.mux(pk)
                n += 1
            for pk in s.encode():
                c.mux(pk)
    return n


def write_reference(src: str | os.PathLike, path: str | os.PathLike, max_frames: int | None = None) -> int:
    """Write the first ``max_frames`` (all when ``None``) decoded frames of ``src`` losslessly
    (see :func:`write_lossless`) to ``path``. Used as the reference of trimmed studies.
    Returns the frame count.
    """
    from ..io import iter_frames, probe

    info = probe(src)
    return write_lossless(iter_frames(src, max_frames=max_frames), path, info.fps or 25.0)


def transcode_live(frames: Iterable, crf: int = 35, preset: str = "veryfast",
                   fps: float = 25.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pair each frame with its H.264-compressed version, frame by frame, in memory.

    What an encoder-side scorer sees live: every ``H x W x 3`` uint8 RGB frame (even ``H``
    and ``W``) goes through libx264 (yuv420p, ``crf`` 0..51, ``tune=zerolatency``: no frame
    delay, no B-frames) and FFmpeg's H.264 decoder. Yields ``(original, compressed)`` RGB
    pairs in order, one per input frame. Raises :class:`InputError` for odd sizes or a bad
    ``crf``/``preset``, :class:`VideoError` when the codec fails.
    """
    import av

    if not (isinstance(crf, int) and 0 <= crf <= 51) or preset not in PRESETS:
        raise InputError(f"crf must be an integer 0..51 and preset one of {PRESETS}; got {crf!r}, {preset!r}")
    enc = dec = None
    pending: collections.deque = collections.deque()
    try:
        for i, rgb in enumerate(frames):
            if enc is None:
                enc, dec = _live_codecs(rgb.shape, crf, preset, fps)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            pending.append(rgb)
            for pkt in enc.encode(vf):
                for out in dec.decode(pkt):
                    yield pending.popleft(), out.to_ndarray(format="rgb24")
        if enc is not None:
            for pkt in [*enc.encode(None), None]:
                for out in dec.decode(pkt):
                    yield pending.popleft(), out.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise VideoError(f"live H.264 transcoding failed ({exc.strerror or exc})") from None


def _live_codecs(shape: tuple, crf: int, preset: str, fps: float):
    import av

    if len(shape) != 3 or shape[2] != 3 or shape[0] % 2 or shape[1] % 2:
        raise InputError(f"transcode_live needs H x W x 3 RGB frames of even size, got shape {shape}")
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = shape[1], shape[0], "yuv420p"
    enc.time_base = Fraction(1, 1) / _rate(fps)
    enc.framerate = _rate(fps)
    enc.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency"}
    enc.thread_count = 1
    dec = av.CodecContext.create("h264", "r")
    dec.thread_count = 1
    return enc, dec
