"""Hostile use of the Python API (issue 7): every bad input is a DctqaError subclass with a
clear message, no NaN passes for a score, memory stays flat in the video's length, the
ops give the CPU op's answer on every device, and device->host copies are synchronised.

Property-based where the input space is wide (hypothesis). CUDA tests skip without a GPU
or a CUDA build and run in ``benchmarks/gpu_check.sh`` (their names contain "cuda"); the
logic they guard is also covered on the CPU.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dctqa
from dctqa import ops
from dctqa.backbones import Backbone, Preprocess, Stem, get_backbone
from dctqa.constants import EPSILON
from dctqa.ops.dct import dct2
from dctqa.errors import BackboneError, ConfigError, DctqaError, InputError, ResourceError
from dctqa.metric import Metric, _copy_is_async, preprocess_torch

ROOT = Path(__file__).resolve().parents[1]
_AVAIL = ops.available()
needs_cpp = pytest.mark.skipif(not _AVAIL["cpp"], reason=f"dctqa._C CPU kernels not built: {_AVAIL['extension_error']}")
needs_cuda = pytest.mark.skipif(
    not (_AVAIL["cuda"] and _AVAIL["cuda_device"]),
    reason=("no CUDA device" if not _AVAIL["cuda_device"] else "dctqa._C built without CUDA kernels"),
)
needs_cuda_device = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def pixel() -> Metric:
    return Metric(backbone="pixel", domain="pixel")


def _frames(n: int = 2, h: int = 16, w: int = 20, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _run_py(code: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=e, timeout=timeout, cwd=str(ROOT))


# ------------------------------------------------------------------ (9) argument checks
@FAST
@given(stride=st.one_of(st.integers(-5, 0), st.floats(allow_nan=True), st.booleans(), st.none(),
                        st.text(max_size=3), st.integers(1, 3).map(float)))
def test_bad_frame_stride_is_input_error(stride) -> None:
    """frame_stride=0 was a ZeroDivisionError, -1 scored every frame, 2.5 was accepted."""
    m = Metric(backbone="pixel", domain="pixel")
    with pytest.raises(InputError, match="frame_stride"):
        m.score_video("does-not-matter.mp4", "does-not-matter.mp4", frame_stride=stride)


@pytest.mark.parametrize("path", [None, 5, 2.5, b"x.mp4", ["a.mp4"], ""])
def test_bad_video_path_is_input_error(pixel, path) -> None:
    """A path of None or 5 was a raw TypeError."""
    with pytest.raises(InputError, match="path"):
        pixel.score_video(path, "x.mp4")
    with pytest.raises(InputError, match="path"):
        pixel.score_video("x.mp4", path)


@pytest.mark.parametrize("max_frames", [0, -1, 1.5, True])
def test_bad_max_frames_is_input_error(pixel, max_frames) -> None:
    with pytest.raises(InputError, match="max_frames"):
        pixel.score_video("x.mp4", "x.mp4", max_frames=max_frames)


@FAST
@given(h2=st.integers(1, 12), w2=st.integers(1, 12))
def test_ragged_frame_list_is_input_error(h2, w2) -> None:
    """A list of frames of different sizes raised numpy's ValueError."""
    m = Metric(backbone="pixel", domain="pixel")
    a = [np.zeros((8, 8, 3), np.uint8), np.zeros((h2, w2, 3), np.uint8)]
    if (h2, w2) == (8, 8):
        assert m.score(a, a).shape == (2,)
    else:
        with pytest.raises(InputError, match="differ in shape"):
            m.score(a, a)


def test_sparse_and_meta_tensors_are_input_errors(pixel) -> None:
    """Sparse and meta tensors raised raw torch errors."""
    t = torch.zeros(1, 3, 8, 8)
    with pytest.raises(InputError, match="sparse"):
        pixel.score(t.to_sparse(), t)
    with pytest.raises(InputError, match="meta"):
        pixel.score(t.to("meta"), t.to("meta"))


@FAST
@given(lo=st.floats(-1e6, 1e6, allow_nan=False), span=st.floats(0, 1e6, allow_nan=False))
def test_float_pixels_must_be_in_range(lo, span) -> None:
    """Floats far outside 0..255 were accepted and scored; floats that look like 0..1 (largest
    pixel in (0, 1]) were scored as if 0..255 (issue 20): refused, saying data_range=1.0."""
    m = Metric(backbone="pixel", domain="pixel")
    a = np.linspace(lo, lo + span, 8 * 8 * 3).reshape(8, 8, 3)
    ok = a.min() >= -1.0 and a.max() <= 256.0
    if ok and 0.0 < a.max() <= 1.0:
        with pytest.raises(InputError, match="pass data_range=1.0"):
            m.score(a, a)
    elif ok:
        assert np.isfinite(m.score(a, a)).all()
    else:
        with pytest.raises(InputError, match="0..255"):
            m.score(a, a)


@pytest.mark.parametrize("device", ["meta", "xla", "mps", "cpu:banana", 5, None, "cuda:99"])
def test_unsupported_device_is_input_error(device) -> None:
    """device='meta' went through and failed later with a traceback."""
    if device == "cuda:99" and not torch.cuda.is_available():
        device = "cuda"  # still an InputError: no GPU here
    with pytest.raises(InputError, match="device"):
        Metric(backbone="pixel", domain="pixel", device=device)


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": 2.5}, {"batch_size": True},
                                    {"epsilon": float("nan")}, {"epsilon": -1}, {"max_pixels": 0},
                                    {"max_pixels": 1.5}])
def test_bad_metric_arguments(kwargs) -> None:
    with pytest.raises(InputError):
        Metric(backbone="pixel", domain="pixel", **kwargs)


# ------------------------------------------------------------------ (10) size cap
def test_size_cap_before_allocation(monkeypatch) -> None:
    """Frames over the cap raise ResourceError before any work (8000^2 took 5-7 GB before)."""
    m = Metric(backbone="pixel", domain="pixel", max_pixels=16 * 16)
    called = []
    monkeypatch.setattr(m, "_qk", lambda *a: called.append(1))
    with pytest.raises(ResourceError, match="size limit of 256 pixels"):
        m.score(_frames(1, 17, 16), _frames(1, 17, 16))
    assert not called
    monkeypatch.setenv("DCTQA_MAX_PIXELS", "100")
    with pytest.raises(ResourceError, match="DCTQA_MAX_PIXELS"):
        Metric(backbone="pixel", domain="pixel").score(_frames(1, 11, 10), _frames(1, 11, 10))
    monkeypatch.setenv("DCTQA_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="DCTQA_MAX_PIXELS"):
        Metric(backbone="pixel", domain="pixel")


def test_size_cap_checked_on_videos_before_decoding(tmp_path) -> None:
    from tests.helpers import make_video

    p = tmp_path / "v.mkv"
    make_video(p, _frames(3, 32, 32), codec="ffv1")
    m = Metric(backbone="pixel", domain="pixel", max_pixels=1000)
    with pytest.raises(ResourceError, match="32x32"):
        m.score_video(p, p)


def test_default_size_cap_rejects_huge_frame_without_allocating() -> None:
    """A 20000^2 pair was OOM-killed; now a clear error (uint8 frames built lazily: no copy)."""
    m = Metric(backbone="pixel", domain="pixel")
    for dtype in (torch.uint8, torch.float32):  # float: checked before the NaN/range scan
        big = torch.zeros(1, 3, 1, 1, dtype=dtype).expand(1, 3, 20000, 20000)
        with pytest.raises(ResourceError, match="20000x20000"):
            m.score(big, big)
    frames = [np.zeros((1, 1, 3), np.uint8)] * 2
    frames = [np.broadcast_to(f, (20000, 20000, 3)) for f in frames]
    with pytest.raises(ResourceError, match="20000x20000"):
        m.score(frames, frames)  # a list: checked before np.stack copies it


@FAST
@given(n=st.integers(1, 7), cap_frames=st.integers(1, 8))
def test_cap_splits_batches_without_changing_q(n, cap_frames) -> None:
    """Large frames are processed fewer at a time; the scores do not change."""
    a, b = _frames(n, 8, 8, seed=n), _frames(n, 8, 8, seed=n + 1)
    full = Metric(backbone="pixel", domain="pixel", batch_size=8).score(a, b)
    capped = Metric(backbone="pixel", domain="pixel", batch_size=8, max_pixels=64 * cap_frames)
    assert capped._step(8, 8) == min(8, cap_frames)
    np.testing.assert_array_equal(capped.score(a, b), full)


# ------------------------------------------------------------------ (6)/(7) backbones
def _onnx(tmp_path: Path, weight: np.ndarray | None, inputs: bool = True, **conv_attrs) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((2, 3, 3, 3), np.float32) if weight is None else weight.astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], **conv_attrs), helper.make_node("Relu", ["y"], ["z"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])] if inputs else [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    path = tmp_path / f"m{len(list(tmp_path.iterdir()))}.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return f"onnx:{path}"


@pytest.mark.parametrize("shape", [(3,), (2, 3, 3), (0, 3, 3, 3), (2, 3, 0, 3), (2, 3, 3, 3, 1)])
def test_onnx_first_conv_weight_of_wrong_rank_or_empty(tmp_path, shape) -> None:
    """1-D/3-D weights crashed with a ValueError; 0 filters gave NaN scores."""
    with pytest.raises(BackboneError, match="weight|empty"):
        get_backbone(_onnx(tmp_path, np.ones(shape)))


def test_onnx_graph_without_inputs(tmp_path) -> None:
    with pytest.raises(BackboneError, match="no graph input"):
        get_backbone(_onnx(tmp_path, None, inputs=False))


def test_onnx_stride_zero_and_negative_pads(tmp_path) -> None:
    with pytest.raises(BackboneError, match="strides"):
        get_backbone(_onnx(tmp_path, None, strides=[0, 0]))
    with pytest.raises(BackboneError, match="pads"):
        get_backbone(_onnx(tmp_path, None, pads=[-1, 0, 0, 0]))


def _stem(**kw) -> Stem:
    args = dict(weight=np.ones((2, 3, 3, 3)), stride=1, padding=(0, 0, 0, 0), scale=np.ones(2),
                shift=np.zeros(2), activation="relu")
    return Stem(**{**args, **kw})


def test_stem_stride_zero_and_zero_filters_are_errors() -> None:
    with pytest.raises(BackboneError, match="stride"):
        _stem(stride=0)
    with pytest.raises(BackboneError, match="K x 3"):
        _stem(weight=np.ones((0, 3, 3, 3)))
    with pytest.raises(BackboneError, match="empty"):
        Backbone(name="none", filters=np.ones((0, 3, 3, 3)), preprocess=Preprocess(), stem=None, source="t")


@FAST
@given(h=st.integers(1, 9), w=st.integers(1, 9), k=st.integers(1, 7), pad=st.integers(0, 2), s=st.integers(1, 3))
def test_feature_domain_kernel_larger_than_frame(h, w, k, pad, s) -> None:
    """A kernel larger than the (padded) frame raised a raw torch RuntimeError."""
    stem = _stem(weight=np.random.default_rng(k).normal(size=(2, 3, k, k)), stride=s,
                 padding=(pad, pad, pad, pad))
    bb = Backbone(name="t", filters=stem.weight, preprocess=Preprocess(), stem=stem, source="t")
    m = Metric(backbone=bb, domain="feature")
    a, b = _frames(1, h, w, seed=h), _frames(1, h, w, seed=w + 9)
    if h + 2 * pad >= k and w + 2 * pad >= k:
        assert np.isfinite(m.score(a, b)).all()
    else:
        with pytest.raises(InputError, match="smaller than the first layer"):
            m.score(a, b)


# ------------------------------------------------------------------ (6) environment, OOM
def test_garbage_spectra_cache_env_is_config_error() -> None:
    """DCTQA_SPECTRA_CACHE_MB=lots crashed `import dctqa.domains` with a ValueError traceback."""
    r = _run_py("""
        import numpy as np, torch
        from dctqa import ops
        from dctqa.errors import ConfigError
        try:
            ops.spectral_qk(torch.ones(1, 3, 4, 4), torch.ones(1, 3, 4, 4), torch.ones(2, 3, 2, 2), 0.01)
        except ConfigError as e:
            print("CONFIG", e)
    """, env={"DCTQA_SPECTRA_CACHE_MB": "lots"})
    assert r.returncode == 0, r.stderr
    assert "CONFIG environment variable DCTQA_SPECTRA_CACHE_MB='lots'" in r.stdout


@FAST
@given(value=st.one_of(st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                                min_size=1, max_size=6),
                        st.sampled_from(["0", "-3", "1e3", "nan", "2**40", "64MB", " 12\n", "1_0", "\u0661"])))
def test_op_env_vars_checked_before_the_op(value, monkeypatch) -> None:
    """DCTQA_CPU_CHUNK_MB / DCTQA_CUDA_WORKSPACE_MB garbage silently became 1 MiB."""
    from dctqa.settings import check_op_env

    monkeypatch.setenv("DCTQA_CPU_CHUNK_MB", value)
    import re

    v = value.strip(" \t\n\r\v\f")
    good = v == "" or (re.fullmatch(r"[+-]?[0-9]+", v) is not None and 1 <= int(v) <= 1 << 30)
    if good:
        check_op_env()
    else:
        with pytest.raises(ConfigError, match="DCTQA_CPU_CHUNK_MB"):
            check_op_env()
        co = torch.ones(1, 3, 4, 4)
        with pytest.raises(ConfigError):
            if ops.implementation_for("cpu") == "cpp-op":
                ops.spectral_qk(co, co, torch.ones(2, 3, 2, 2), EPSILON)
            else:
                raise ConfigError("no op here: the Python check above is the one that matters")


@pytest.mark.parametrize("exc", [MemoryError(), torch.OutOfMemoryError("CUDA out of memory"),
                                 RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate")])
def test_out_of_memory_is_resource_error(monkeypatch, exc) -> None:
    m = Metric(backbone="pixel", domain="pixel")

    def boom(*a):
        raise exc

    monkeypatch.setattr(m._domain, "qk", boom)
    monkeypatch.setattr(m._domain, "qk_frames", boom, raising=False)  # the fused op's entry
    with pytest.raises(ResourceError, match="out of host memory.*batch_size"):
        m.score(_frames(), _frames())
    assert issubclass(ResourceError, DctqaError)


def test_other_runtime_errors_are_not_hidden(monkeypatch) -> None:
    m = Metric(backbone="pixel", domain="pixel")
    def bug(*a):
        raise RuntimeError("a bug")

    monkeypatch.setattr(m._domain, "qk", bug)
    monkeypatch.setattr(m._domain, "qk_frames", bug, raising=False)  # the fused op's entry
    with pytest.raises(RuntimeError, match="a bug"):
        m.score(_frames(), _frames())


# ------------------------------------------------------------------ (7) no NaN as a score
def test_no_filters_no_nan(monkeypatch) -> None:
    """An empty filter bank gave NaN (mean of nothing) without an error."""
    m = Metric(backbone="pixel", domain="pixel")
    monkeypatch.setattr(m, "_qk", lambda r, d: torch.zeros((r.shape[0], 0), dtype=torch.float64))
    with pytest.raises(InputError, match="no finite value"):
        m.score(_frames(), _frames())


# ------------------------------------------------------------------ (2) op semantics
def _implementations() -> list[str]:
    out = ["torch"]
    if _AVAIL["cpp"]:
        out.append("cpu-op")
    if _AVAIL["cuda"] and _AVAIL["cuda_device"]:
        out.append("cuda-op")
    return out


def _spectral(impl: str, co, cc, f, monkeypatch):
    if impl == "torch":
        monkeypatch.setenv("DCTQA_DISABLE_OPS", "1")
    dev = "cuda" if impl == "cuda-op" else "cpu"
    out = ops.spectral_qk(co.to(dev), cc.to(dev), f.to(dev), EPSILON)
    monkeypatch.delenv("DCTQA_DISABLE_OPS", raising=False)
    return out.cpu()


@pytest.mark.parametrize("impl", _implementations())
@pytest.mark.parametrize("n,c,h,w,k", [(2, 0, 5, 4, 3), (0, 3, 5, 4, 3), (2, 3, 5, 4, 0), (1, 3, 1, 1, 2),
                                       (1, 5, 6, 7, 2), (2, 1, 3, 9, 4)])
def test_spectral_edge_cases_same_on_every_implementation(impl, n, c, h, w, k, monkeypatch) -> None:
    """0 channels: 1.0 everywhere (the CUDA op failed "invalid argument", the torch path
    raised); 5 channels: the CUDA op refused (and crashed building its message)."""
    g = torch.Generator().manual_seed(n + c + h + w + k)
    xo, xc = torch.rand(n, c, h, w, generator=g) * 3, torch.rand(n, c, h, w, generator=g) * 3
    f = torch.randn(k, c, 2, 3, generator=g)
    co, cc = dct2(xo), dct2(xc)
    q = _spectral(impl, co, cc, f, monkeypatch)
    assert q.shape == (n, k) and q.dtype == torch.float64
    if c == 0:
        assert bool((q == 1.0).all())
    cpu = ops.spectral_qk(co, cc, f, EPSILON)
    torch.testing.assert_close(q, cpu, rtol=1e-4, atol=0)


_DIRECT_CASES = [(2, 0, 5, 4, 3), (0, 3, 5, 4, 3), (2, 3, 5, 4, 0), (1, 3, 1, 1, 2), (3, 4, 2, 9, 5)]


def _direct(n, c, h, w, k, device: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(n + 2 * c + 3 * h + 5 * w + 7 * k)
    co, cc = torch.randn(n, c, h, w, generator=g), torch.randn(n, c, h, w, generator=g)
    f = torch.randn(k, c, 3, 2, generator=g)
    return torch.ops.dctqa.spectral_qk(co.to(device), cc.to(device), f.to(device), EPSILON).cpu()


@needs_cpp
@pytest.mark.parametrize("n,c,h,w,k", _DIRECT_CASES)
def test_cpu_op_direct_edge_cases(n, c, h, w, k) -> None:
    """The CPU op itself (no wrapper): 0 channels -> 1, empty batch / no filter -> empty."""
    q = _direct(n, c, h, w, k, "cpu")
    assert q.shape == (n, k)
    if c == 0:
        assert bool((q == 1.0).all())


@needs_cuda
@pytest.mark.parametrize("n,c,h,w,k", _DIRECT_CASES)
def test_cuda_op_direct_edge_cases_match_cpu_op(n, c, h, w, k) -> None:
    """The CUDA op itself failed "invalid argument" for 0 channels (an empty launch)."""
    torch.testing.assert_close(_direct(n, c, h, w, k, "cuda"), _direct(n, c, h, w, k, "cpu"), rtol=1e-4, atol=0)


@needs_cuda
def test_cuda_op_errors_reach_python_as_exceptions() -> None:
    """Calling the CUDA op directly with 5 channels killed the process (SIGSEGV) on the
    GPU machine; every TORCH_CHECK must surface as a RuntimeError."""
    r = _run_py("""
        import torch, dctqa.ops as ops
        ops.available()
        x = torch.ones(1, 5, 8, 8, device="cuda")
        f = torch.ones(2, 5, 3, 3, device="cuda")
        for args in [(x, x, f), (x, x[:, :4], f), (x.double(), x.double(), f.double())]:
            try:
                torch.ops.dctqa.spectral_qk(*args, 0.01)
                print("NO ERROR")
            except RuntimeError as e:
                print("RAISED", str(e).splitlines()[0][:80])
        torch.cuda.synchronize()
    """)
    assert r.returncode == 0, f"rc {r.returncode}: {r.stderr[-2000:]}"
    assert r.stdout.count("RAISED") == 3, r.stdout


@needs_cuda
def test_cuda_ratio_edge_cases_match_cpu() -> None:
    for shape in [(0, 3, 5), (2, 0, 5), (1, 1, 1), (3, 2, 1000)]:
        a, c = torch.rand(shape), torch.rand(shape)
        torch.testing.assert_close(ops.ratio_qk(a.cuda(), c.cuda(), EPSILON).cpu(),
                                   ops.ratio_qk(a, c, EPSILON), rtol=1e-5, atol=0)


# ------------------------------------------------------------------ (3) device -> host copies
def test_copies_to_the_host_block() -> None:
    """A CUDA -> CPU copy with non_blocking=True returns before the data is there."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert _copy_is_async(cpu, cuda)
    assert not _copy_is_async(cuda, cpu)
    assert not _copy_is_async(cpu, cpu)
    assert not _copy_is_async(cuda, cuda)


def test_preprocess_requests_a_blocking_copy_to_the_host(monkeypatch) -> None:
    seen = []
    real = torch.Tensor.to

    def spy(self, *a, **kw):
        seen.append(kw.get("non_blocking", False))
        return real(self, *a, **kw)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    preprocess_torch(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), Preprocess(), torch.device("cpu"))
    assert seen and not any(seen)


@needs_cuda_device
def test_cuda_frames_on_cpu_metric_give_exact_q() -> None:
    """A CPU Metric given CUDA tensors returned Q off by 5-7 % at 768x576."""
    m = Metric(backbone="pixel", domain="pixel", device="cpu")
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 256, (4, 3, 576, 768), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (4, 3, 576, 768), dtype=torch.uint8, generator=g)
    want = m.score(a, b)
    for _ in range(3):
        np.testing.assert_array_equal(m.score(a.cuda(), b.cuda()), want)
        np.testing.assert_array_equal(m.score(a.cuda().float(), b.cuda().float()), want)


# ------------------------------------------------------------------ (4) owned arrays, flat memory
def test_scores_own_their_memory(pixel) -> None:
    """score() returned NumPy views of torch tensors (kept per batch by score_video)."""
    q = pixel.score(_frames(), _frames(seed=1))
    qk = pixel.score(_frames(), _frames(seed=1), per_filter=True)
    for arr in (q, qk):
        assert arr.flags.owndata and arr.base is None and arr.dtype == np.float64


_RSS_SCRIPT = """
import resource, sys
import numpy as np
sys.path.insert(0, {root!r})
import dctqa
from tests.helpers import make_video
n, path = int(sys.argv[1]), sys.argv[2]
if sys.argv[3] == "make":
    base = np.random.default_rng(0).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    make_video(path, base[np.arange(n) % 8], codec="ffv1")
    sys.exit(0)
m = dctqa.Metric(backbone=sys.argv[3], batch_size=8)
m.score_video(path, path, max_frames=16)  # warm-up: caches, thread pools, allocator
r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
s = m.score_video(path, path)
assert len(s.q) == n and np.isfinite(s.q).all()
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024)
"""


def test_memory_flat_in_video_length(tmp_path, yolox_backbone) -> None:
    """Peak RSS while scoring 2000 frames exceeds that of 100 frames by < 12 MiB.

    Before the fix (NumPy views of torch tensors kept per batch) 2000 frames of 64x64 grew
    the peak by ~40 MiB and 100 frames by ~2 MiB; the frames themselves are 12 KiB each,
    so keeping even one of the two frames of every pair would add > 23 MiB.
    """
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    growth = {}
    for n in (100, 2000):
        video = str(tmp_path / f"v{n}.mkv")
        subprocess.run([sys.executable, str(script), str(n), video, "make"], check=True, env=env, timeout=120)
        r = subprocess.run([sys.executable, str(script), str(n), video, yolox_backbone], capture_output=True,
                           text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        growth[n] = float(r.stdout.strip().splitlines()[-1])
    assert growth[2000] - growth[100] < 12.0, growth
