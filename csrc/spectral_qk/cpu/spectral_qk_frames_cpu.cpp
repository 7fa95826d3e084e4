// CPU kernel of dctqa::spectral_qk_frames: uint8 (or float32) RGB frames to Q_k.
//
// Per chunk of frame pairs (sized to DCTQA_CPU_CHUNK_MB): each of the 3 channels of
// both frames is gathered from the frames' memory (any strides) into a float32 plane
// and transformed in place by pocketfft's DCT-II (third_party/pocketfft). The
// preprocessing is affine per channel, x = a_c * p + b_c, so it is folded into the
// transform: DCT(x) = a_c * DCT(p) + b_c * H * W at (0, 0) (the DCT of a constant).
// The chunk's DCTs then go to the shared spectral kernel with the cached filter spectra.
// Memory: 2 * chunk * 3 * H * W floats of DCTs plus the kernel's per-thread buffers;
// nothing grows with the number of frames.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

// Standard headers pocketfft uses, included first so that only pocketfft's own
// symbols get hidden visibility below (torch ships its own pocketfft build).
#include <algorithm>
#include <array>
#include <type_traits>
#include <atomic>
#include <cmath>
#include <complex>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <queue>
#include <stdexcept>
#include <thread>
#include <vector>

#define POCKETFFT_CACHE_SIZE 16
#pragma GCC visibility push(hidden)
#include "pocketfft/pocketfft_hdronly.h"
#pragma GCC visibility pop

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "common/checks.h"
#include "spectral_qk/cpu/spectral_core.h"
#include "spectral_qk/cpu/spectral_rows.h"

namespace dctqa {
namespace {

struct Affine {
  int src[3];     // RGB index feeding detector channel c
  float a[3];     // scale / std[c]
  double b[3];    // -mean[c] / std[c]
};

Affine make_affine(at::IntArrayRef channel_index, double scale, at::ArrayRef<double> mean,
                   at::ArrayRef<double> stdv) {
  TORCH_CHECK(channel_index.size() == 3 && mean.size() == 3 && stdv.size() == 3,
              "dctqa: channel_index, mean and std need 3 values each, got ", channel_index.size(),
              ", ", mean.size(), ", ", stdv.size());
  TORCH_CHECK(std::isfinite(scale) && scale > 0, "dctqa: scale must be finite and > 0, got ", scale);
  Affine p;
  for (int c = 0; c < 3; ++c) {
    TORCH_CHECK(channel_index[c] >= 0 && channel_index[c] < 3,
                "dctqa: channel_index values must be 0, 1 or 2, got ", channel_index);
    TORCH_CHECK(std::isfinite(stdv[c]) && stdv[c] > 0 && std::isfinite(mean[c]),
                "dctqa: std must be finite and > 0 and mean finite, got mean ", mean, ", std ", stdv);
    p.src[c] = (int)channel_index[c];
    p.a[c] = (float)(scale / stdv[c]);
    p.b[c] = -mean[c] / stdv[c];
  }
  return p;
}

void check_frames(const at::Tensor& ref, const at::Tensor& dist, const at::Tensor& filters) {
  TORCH_CHECK(ref.dim() == 4 && ref.size(1) == 3,
              "dctqa: ref must be [N, 3, H, W] RGB frames, got ", ref.sizes());
  TORCH_CHECK(ref.sizes() == dist.sizes(), "dctqa: ref and dist must have the same shape, got ",
              ref.sizes(), " and ", dist.sizes());
  TORCH_CHECK(ref.scalar_type() == dist.scalar_type() &&
                  (ref.scalar_type() == at::kByte || ref.scalar_type() == at::kFloat),
              "dctqa: ref and dist must both be uint8 or both float32, got ", ref.scalar_type(),
              " and ", dist.scalar_type());
  TORCH_CHECK(ref.device().is_cpu() && dist.device().is_cpu() && filters.device().is_cpu(),
              "dctqa: spectral_qk_frames CPU kernel got non-CPU tensors");
  check_float32(filters, "filters", 4);
  TORCH_CHECK(filters.size(1) == 3, "dctqa: filters must be [K, 3, kh, kw], got ", filters.sizes());
  TORCH_CHECK(filters.size(2) > 0 && filters.size(3) > 0, "dctqa: empty filters ", filters.sizes());
  TORCH_CHECK(ref.size(2) > 0 && ref.size(3) > 0, "dctqa: empty frames ", ref.sizes());
  TORCH_CHECK(ref.size(2) * ref.size(3) < (int64_t(1) << 31),
              "dctqa: frames larger than 2^31 pixels are not supported");
}

// dst[y*W + x] = src[y*sy + x*sx] as float (strides in elements).
template <typename T>
void gather_plane(const T* src, int64_t sy, int64_t sx, int64_t H, int64_t W, float* dst) {
  for (int64_t y = 0; y < H; ++y) {
    const T* s = src + y * sy;
    float* d = dst + y * W;
    if (sx == 1) {
      for (int64_t x = 0; x < W; ++x) d[x] = (float)s[x];
    } else if (std::is_same<T, uint8_t>::value && sx == 3) {  // an N x H x W x 3 array
      cpu::gather_u8_stride3(reinterpret_cast<const uint8_t*>(s), d, W);
    } else {
      for (int64_t x = 0; x < W; ++x) d[x] = (float)s[x * sx];
    }
  }
}

namespace pf = pocketfft::detail;
using V = pf::vtype_t<float>;                         // pocketfft's native float vector
constexpr int64_t L = (int64_t)pf::VLEN<float>::val;  // its lanes (4 with SSE2)

// Unnormalised 2-D DCT-II of METRIC.md, C[u, v] = sum x cos(..) cos(..), times `factor`,
// of the plane src[y*sy + x*sx] (uint8 or float) into `plane` (H x W, row-major).
// pocketfft's 1-D DCT-II (unnormalised: 2 * sum, hence 0.25 over both axes) on L lines at
// once, with our own line copies: rows are converted L at a time into an L1 staging block
// and transposed into the lanes (no separate conversion pass over the plane); columns are
// read as whole vectors, 4 L adjacent columns per sweep over the rows.
// buf[x] = (rows[0][x], ..., rows[L-1][x]) for x < W (rows W apart).
void lanes_from_rows(const float* rows, int64_t W, V* buf) {
  int64_t x = 0;
#if defined(__SSE2__)
  if (L == 4)
    for (; x + 4 <= W; x += 4) {
      __m128 r0 = _mm_loadu_ps(rows + x), r1 = _mm_loadu_ps(rows + W + x);
      __m128 r2 = _mm_loadu_ps(rows + 2 * W + x), r3 = _mm_loadu_ps(rows + 3 * W + x);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      std::memcpy(buf + x, &r0, 16), std::memcpy(buf + x + 1, &r1, 16);
      std::memcpy(buf + x + 2, &r2, 16), std::memcpy(buf + x + 3, &r3, 16);
    }
#endif
  for (; x < W; ++x)
    for (int64_t k = 0; k < L; ++k) buf[x][k] = rows[k * W + x];
}

// rows[k][x] = buf[x][k] for x < W, k < n <= L (rows W apart): the inverse of the above.
void rows_from_lanes(const V* buf, int64_t W, int64_t n, float* rows) {
  int64_t x = 0;
#if defined(__SSE2__)
  if (L == 4 && n == 4)
    for (; x + 4 <= W; x += 4) {
      __m128 r0, r1, r2, r3;
      std::memcpy(&r0, buf + x, 16), std::memcpy(&r1, buf + x + 1, 16);
      std::memcpy(&r2, buf + x + 2, 16), std::memcpy(&r3, buf + x + 3, 16);
      _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
      _mm_storeu_ps(rows + x, r0), _mm_storeu_ps(rows + W + x, r1);
      _mm_storeu_ps(rows + 2 * W + x, r2), _mm_storeu_ps(rows + 3 * W + x, r3);
    }
#endif
  for (; x < W; ++x)
    for (int64_t k = 0; k < n; ++k) rows[k * W + x] = buf[x][k];
}

template <typename T>
void dct2_plane(const T* src, int64_t sy, int64_t sx, int64_t H, int64_t W, float factor, float* plane) {
  const auto row_plan = pf::get_plan<pf::T_dcst23<float>>((size_t)W);
  const auto col_plan = pf::get_plan<pf::T_dcst23<float>>((size_t)H);
  thread_local std::vector<float> stage_mem;
  thread_local std::vector<V> buf_mem;
  if ((int64_t)stage_mem.size() < L * W) stage_mem.resize((size_t)(L * W));
  if ((int64_t)buf_mem.size() < std::max(W, 4 * H)) buf_mem.resize((size_t)std::max(W, 4 * H));
  float* stage = stage_mem.data();
  V* buf = buf_mem.data();
  for (int64_t y0 = 0; y0 < H; y0 += L) {  // rows (axis 1)
    const int64_t n = std::min(L, H - y0);
    gather_plane(src + y0 * sy, sy, sx, n, W, stage);
    if (n < L) std::fill(stage + n * W, stage + L * W, 0.f);
    lanes_from_rows(stage, W, buf);
    row_plan->exec(buf, 0.25f * factor, false, 2, true);
    rows_from_lanes(buf, W, n, plane + y0 * W);
  }
  for (int64_t x0 = 0; x0 < W; x0 += 4 * L) {  // columns (axis 0), in place
    const int64_t cols = std::min(4 * L, W - x0), groups = (cols + L - 1) / L;
    if (cols == 4 * L) {
      for (int64_t y = 0; y < H; ++y)
        for (int64_t g = 0; g < 4; ++g) std::memcpy(&buf[g * H + y], plane + y * W + x0 + g * L, sizeof(V));
    } else {
      for (int64_t y = 0; y < H; ++y)
        for (int64_t g = 0; g < groups; ++g) {
          V v = {};
          std::memcpy(&v, plane + y * W + x0 + g * L, (size_t)std::min(L, cols - g * L) * sizeof(float));
          buf[g * H + y] = v;
        }
    }
    for (int64_t g = 0; g < groups; ++g) col_plan->exec(buf + g * H, 1.f, false, 2, true);
    if (cols == 4 * L) {
      for (int64_t y = 0; y < H; ++y)
        for (int64_t g = 0; g < 4; ++g) std::memcpy(plane + y * W + x0 + g * L, &buf[g * H + y], sizeof(V));
    } else {
      for (int64_t y = 0; y < H; ++y)
        for (int64_t g = 0; g < groups; ++g)
          std::memcpy(plane + y * W + x0 + g * L, &buf[g * H + y],
                      (size_t)std::min(L, cols - g * L) * sizeof(float));
    }
  }
}

// The channel DCTs of frames [n0, n0+nn) of ref and dist into co, cc ([nn, 3, H, W]).
void frames_to_dcts(const at::Tensor& ref, const at::Tensor& dist, int64_t n0, int64_t nn,
                    const Affine& p, float* co, float* cc) {
  const int64_t H = ref.size(2), W = ref.size(3), HW = H * W;
  at::parallel_for(0, nn * 6, 1, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / 6, side = (item / 3) % 2, c = item % 3;
      const at::Tensor& src = side == 0 ? ref : dist;
      float* plane = (side == 0 ? co : cc) + (t * 3 + c) * HW;
      const int64_t off = (n0 + t) * src.stride(0) + p.src[c] * src.stride(1);
      if (src.scalar_type() == at::kByte)
        dct2_plane(src.data_ptr<uint8_t>() + off, src.stride(2), src.stride(3), H, W, p.a[c], plane);
      else
        dct2_plane(src.data_ptr<float>() + off, src.stride(2), src.stride(3), H, W, p.a[c], plane);
      plane[0] += (float)(p.b[c] * (double)HW);
    }
  });
}

at::Tensor spectral_qk_frames_cpu(const at::Tensor& ref, const at::Tensor& dist,
                                  const at::Tensor& filters_in, at::IntArrayRef channel_index,
                                  double scale, at::ArrayRef<double> mean, at::ArrayRef<double> stdv,
                                  double epsilon) {
  check_frames(ref, dist, filters_in);
  const Affine p = make_affine(channel_index, scale, mean, stdv);
  TORCH_CHECK(std::isfinite(epsilon) && epsilon >= 0, "dctqa: epsilon must be finite and >= 0, got ",
              epsilon);
  const at::Tensor filt = filters_in.contiguous();
  const int64_t N = ref.size(0), H = ref.size(2), W = ref.size(3), K = filt.size(0);
  at::Tensor out = at::empty({N, K}, filt.options().dtype(at::kDouble));
  if (N == 0 || K == 0) return out;
  auto fs = cpu::filter_spectra(filt.data_ptr<float>(), K, 3, filt.size(2), filt.size(3), H, W);
  const int64_t pair_bytes = (int64_t)(2 * 3 * sizeof(float)) * H * W;
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(N, cpu::chunk_budget_bytes() / pair_bytes));
  at::Tensor co = at::empty({chunk, 3, H, W}, filt.options());
  at::Tensor cc = at::empty({chunk, 3, H, W}, filt.options());
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nn = std::min(chunk, N - n0);
    frames_to_dcts(ref, dist, n0, nn, p, co.data_ptr<float>(), cc.data_ptr<float>());
    cpu::spectral_qk_planes(co.data_ptr<float>(), cc.data_ptr<float>(), nn, *fs, epsilon,
                            out.data_ptr<double>() + n0 * K);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dctqa, CPU, m) { m.impl("spectral_qk_frames", &spectral_qk_frames_cpu); }

}  // namespace dctqa
