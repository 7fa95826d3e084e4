// CPU kernel of dctqa::sample_patches. Only the valid rectangle of the map (the cells
// whose patch fits the frame; it is contiguous on each axis) is computed; everything
// outside it is 0 by definition. Per frame: the channel sum of |act| and the horizontal
// taps for the rows the valid rows' vertical taps read, then the vertical taps on the
// valid rows, their row sums, the normalisation and the draws (inverse CDF: binary search
// over row sums, then a scan of the row). Every sum runs in the order of the CUDA kernel
// and of the earlier whole-map loops (channels, then taps from -r to r, rows left to
// right), so the results are bitwise unchanged: the loops are vectorised across cells,
// never across a sum, and compiled without FMA contraction.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include "common/control.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <tuple>
#include <vector>

#include "common/cpu_clones.h"
#include "sample_patches/sample_patches.h"
#include "sample_patches/sample_patches_checks.h"

#if defined(__GNUC__) && !defined(__clang__)
// a * b + c must round twice, as on the GPU (__dmul_rn, __dadd_rn) and on x86-64 baseline.
#define DCTQA_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define DCTQA_NO_CONTRACT
#endif

namespace dctqa {
namespace {

// Hot loops (plain loops for the auto-vectoriser, cloned per ISA) ---------------------
// Each output block of kB cells stays in registers while its sum runs over channels or
// taps; a ragged end is done as one more block ending at n (the overlap is recomputed to
// the same values), or cell by cell when n < kB.
constexpr int64_t kB = 32;
// Least work (multiply-adds) per parallel chunk: smaller passes run inline. A 768x576
// frame's conv1 maps (143 x 191 cells, 16 channels, sigma 8: about 1.5 M multiply-adds
// and 0.4 M additions) run serially: waking a second thread saves little on so small a
// pass and costs far more when the cores are busy.
constexpr int64_t kGrainWork = 1 << 21;

inline int64_t grain_rows(int64_t work_per_row) {
  return std::max<int64_t>(1, kGrainWork / std::max<int64_t>(1, work_per_row));
}

inline int64_t block_start(int64_t b, int64_t n) { return std::min(b * kB, n - kB); }

// m[x] = sum_c |a[c * plane + x]| for x in [0, n), channels in order.
DCTQA_CLONES DCTQA_NO_CONTRACT void channel_abs_sum(const float* a, int64_t C, int64_t plane,
                                                    int64_t n, double* __restrict m) {
  if (n < kB) {
    for (int64_t x = 0; x < n; ++x) m[x] = std::fabs((double)a[x]);
    for (int64_t c = 1; c < C; ++c)
      for (int64_t x = 0; x < n; ++x) m[x] += std::fabs((double)a[c * plane + x]);
    return;
  }
  for (int64_t b = 0; b * kB < n; ++b) {
    const int64_t x0 = block_start(b, n);
    double acc[kB];
    for (int64_t i = 0; i < kB; ++i) acc[i] = std::fabs((double)a[x0 + i]);
    for (int64_t c = 1; c < C; ++c) {
      const float* row = a + c * plane + x0;
      for (int64_t i = 0; i < kB; ++i) acc[i] += std::fabs((double)row[i]);
    }
    for (int64_t i = 0; i < kB; ++i) m[x0 + i] = acc[i];
  }
}

// out[i] = sum_{k = 0..K-1} t[k] * src[k * ld + i] for i in [0, n), k in order.
DCTQA_CLONES DCTQA_NO_CONTRACT void weighted_sum(const double* src, int64_t ld, const double* t,
                                                 int64_t K, int64_t n, double* __restrict out) {
  if (n < kB) {
    for (int64_t x = 0; x < n; ++x) out[x] = t[0] * src[x];
    for (int64_t k = 1; k < K; ++k)
      for (int64_t x = 0; x < n; ++x) out[x] += t[k] * src[k * ld + x];
    return;
  }
  for (int64_t b = 0; b * kB < n; ++b) {
    const int64_t x0 = block_start(b, n);
    double acc[kB];
    for (int64_t i = 0; i < kB; ++i) acc[i] = t[0] * src[x0 + i];
    for (int64_t k = 1; k < K; ++k) {
      const double tk = t[k];
      const double* row = src + k * ld + x0;
      for (int64_t i = 0; i < kB; ++i) acc[i] += tk * row[i];
    }
    for (int64_t i = 0; i < kB; ++i) out[x0 + i] = acc[i];
  }
}

// Geometry ------------------------------------------------------------------------------

// Border-renormalised taps: norm[i] = sum of w[|k|] over k = -r..r with 0 <= i + k < n (in
// that order), for i in [lo, hi); cells with every tap inside share one sum.
std::vector<double> tap_norms(int64_t n, int64_t lo, int64_t hi, int64_t r,
                              const std::vector<double>& w) {
  std::vector<double> norm((size_t)n, 0.0);
  double full = 0.0;
  for (int64_t k = -r; k <= r; ++k) full += w[k < 0 ? -k : k];
  for (int64_t i = lo; i < hi; ++i) {
    if (i >= r && i + r < n) {
      norm[i] = full;
      continue;
    }
    for (int64_t k = -r; k <= r; ++k)
      if (i + k >= 0 && i + k < n) norm[i] += w[k < 0 ? -k : k];
  }
  return norm;
}

// One axis: its valid cells [lo, hi) (make_axis makes them contiguous), their corners, the
// border norms of the taps and the cells [need_lo, need_hi) the valid cells' taps read.
struct Axis {
  int64_t n, lo, hi, need_lo, need_hi;
  std::vector<int64_t> corner;
  std::vector<double> norm;
};

Axis make_axis(int64_t cells, int64_t size, int64_t stride, int64_t offset, int64_t patch,
               int64_t r, const std::vector<double>& taps) {
  std::vector<uint8_t> valid((size_t)cells);
  Axis a{cells, 0, 0, 0, 0, std::vector<int64_t>((size_t)cells), {}};
  patches::make_axis(cells, size, stride, offset, patch, valid.data(), a.corner.data());
  a.lo = std::find(valid.begin(), valid.end(), 1) - valid.begin();
  a.hi = cells - (std::find(valid.rbegin(), valid.rend(), 1) - valid.rbegin());
  TORCH_INTERNAL_ASSERT(a.lo < a.hi && std::count(valid.begin(), valid.end(), 1) == a.hi - a.lo,
                        "dctqa: sample_patches valid cells must be contiguous");
  a.need_lo = std::max<int64_t>(0, a.lo - r);
  a.need_hi = std::min(cells, a.hi + r);
  a.norm = tap_norms(cells, a.lo, a.hi, r, taps);
  return a;
}

struct Geometry {
  Axis y, x;
  int64_t C, r;
  std::vector<double> taps;  // w[|k|], k = -r..r
};

// Per-frame steps ---------------------------------------------------------------------

// hx[x - x.lo] for x in [x.lo, x.hi) = horizontal taps of one row m (channel sums, w
// cells) divided by C times the tap norm; cells with all 2r + 1 taps inside take the
// blocked loop, the others sum their taps inside the row in the same order.
void horizontal_row(const double* m, const Geometry& g, double* hx) {
  const Axis& ax = g.x;
  const int64_t w = ax.n, r = g.r;
  const int64_t ia = std::max(ax.lo, r), ib = std::max(ia, std::min(ax.hi, w - r));
  for (int64_t x = ax.lo; x < ax.hi; ++x) {
    if (x == ia) x = ib;
    if (x >= ax.hi) break;
    const int64_t k0 = x - r < 0 ? -x : -r, k1 = x + r >= w ? w - 1 - x : r;
    double acc = 0.0;
    for (int64_t k = k0; k <= k1; ++k) acc += g.taps[r + k] * m[x + k];
    hx[x - ax.lo] = acc / ((double)g.C * ax.norm[x]);
  }
  if (ib > ia) {
    double* o = hx + (ia - ax.lo);
    weighted_sum(m + ia - r, 1, g.taps.data(), 2 * r + 1, ib - ia, o);
    for (int64_t x = ia; x < ib; ++x) o[x - ia] = o[x - ia] / ((double)g.C * ax.norm[x]);
  }
}

// s[(y - y.lo) * nx + (x - x.lo)] = smoothed mean_c |a| on the valid rectangle (nx = valid
// columns); hx holds the horizontal pass of the rows [y.need_lo, y.need_hi).
void smoothed_valid(const float* a, const Geometry& g, double* hx, double* s) {
  const Axis &ay = g.y, &ax = g.x;
  const int64_t w = ax.n, plane = ay.n * w, nx = ax.hi - ax.lo, r = g.r;
  const int64_t rows = ay.need_hi - ay.need_lo, ncols = ax.need_hi - ax.need_lo;
  at::parallel_for(0, rows, grain_rows(ncols * g.C + nx * (2 * r + 1)), [&](int64_t b, int64_t e) {
    std::vector<double> m((size_t)w);
    for (int64_t i = b; i < e; ++i) {
      const int64_t y = ay.need_lo + i;
      channel_abs_sum(a + y * w + ax.need_lo, g.C, plane, ncols, m.data() + ax.need_lo);
      horizontal_row(m.data(), g, hx + i * nx);
    }
  });
  at::parallel_for(ay.lo, ay.hi, grain_rows(nx * (2 * r + 1)), [&](int64_t b, int64_t e) {
    std::vector<double> t((size_t)(2 * r + 1));
    for (int64_t y = b; y < e; ++y) {
      const int64_t k0 = y - r < 0 ? -y : -r, k1 = y + r >= ay.n ? ay.n - 1 - y : r;
      for (int64_t k = k0; k <= k1; ++k) t[k - k0] = g.taps[r + k] / ay.norm[y];
      weighted_sum(hx + (y + k0 - ay.need_lo) * nx, nx, t.data(), k1 - k0 + 1, nx,
                   s + (y - ay.lo) * nx);
    }
  });
}

// out[i] = sum_x a[i * ld + x] over x in [0, n), left to right (each row's sum sequential,
// as in the CUDA kernel), for i in [0, rows); kR rows at a time for instruction-level
// parallelism.
template <typename T>
void row_sums(const T* a, int64_t rows, int64_t n, int64_t ld, double* out) {
  constexpr int64_t kR = 8;
  int64_t i0 = 0;
  for (; i0 + kR <= rows; i0 += kR) {
    double acc[kR] = {};
    for (int64_t x = 0; x < n; ++x)
      for (int64_t j = 0; j < kR; ++j) acc[j] += (double)a[(i0 + j) * ld + x];
    for (int64_t j = 0; j < kR; ++j) out[i0 + j] = acc[j];
  }
  for (int64_t i = i0; i < rows; ++i) {
    double acc = 0.0;
    for (int64_t x = 0; x < n; ++x) acc += (double)a[i * ld + x];
    out[i] = acc;
  }
}

// Total of the valid rectangle s (rows x nx): row sums, then their sequential sum.
double total_mass(const double* s, int64_t rows, int64_t nx, std::vector<double>& rsum) {
  row_sums(s, rows, nx, nx, rsum.data());
  double total = 0.0;
  for (int64_t i = 0; i < rows; ++i) total += rsum[i];
  return total;
}

// p (h x w, zeroed) = s / its total on the valid rectangle; uniform there if s has no mass.
void normalise(double* s, const Geometry& g, float* p) {
  const int64_t rows = g.y.hi - g.y.lo, nx = g.x.hi - g.x.lo, w = g.x.n;
  std::vector<double> rsum((size_t)rows);
  double total = total_mass(s, rows, nx, rsum);
  TORCH_CHECK(std::isfinite(total), "dctqa: sample_patches got non-finite activations");
  if (!(total > 0.0)) {
    std::fill(s, s + rows * nx, 1.0);
    total = total_mass(s, rows, nx, rsum);
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* out = p + (g.y.lo + i) * w + g.x.lo;
    const double* src = s + i * nx;
    for (int64_t x = 0; x < nx; ++x) out[x] = (float)(src[x] / total);
  }
}

// Draws from p: cumulative row sums (rows outside the valid rectangle add 0), then per
// draw the row by binary search and the column by a scan of that row.
void draw(const float* p, const Geometry& g, int64_t n, int64_t num, uint64_t seed, int64_t* out) {
  const int64_t h = g.y.n, w = g.x.n;
  std::vector<double> cdf((size_t)h, 0.0);
  row_sums(p + g.y.lo * w + g.x.lo, g.y.hi - g.y.lo, g.x.hi - g.x.lo, w, cdf.data() + g.y.lo);
  double run = 0.0;
  for (int64_t y = 0; y < h; ++y) cdf[y] = (run += cdf[y]);
  for (int64_t j = 0; j < num; ++j) {
    const double target = patches::uniform01(seed, n, num, j) * cdf[h - 1];
    const int64_t y = patches::upper_index(cdf.data(), h, target);
    const int64_t x = patches::pick_in_row(p + y * w, w, target - (y > 0 ? cdf[y - 1] : 0.0));
    out[2 * j] = g.y.corner[y];
    out[2 * j + 1] = g.x.corner[x];
  }
}

std::tuple<at::Tensor, at::Tensor> sample_patches_cpu(const at::Tensor& act_in, int64_t height,
                                                      int64_t width, int64_t stride, int64_t offset,
                                                      int64_t patch, int64_t num, int64_t seed,
                                                      double sigma) {
  check_sample_patches_args(act_in, height, width, stride, offset, patch, num, sigma);
  TORCH_CHECK(act_in.device().is_cpu(), "dctqa: sample_patches CPU kernel got a non-CPU tensor");
  const at::Tensor act = act_in.contiguous();
  const int64_t N = act.size(0), C = act.size(1), h = act.size(2), w = act.size(3);
  const int64_t r = patches::gauss_radius(sigma);
  std::vector<double> half((size_t)r + 1), taps((size_t)(2 * r + 1));
  patches::gauss_taps(sigma, r, half.data());
  for (int64_t k = -r; k <= r; ++k) taps[r + k] = half[k < 0 ? -k : k];
  const Geometry g{make_axis(h, height, stride, offset, patch, r, half),
                   make_axis(w, width, stride, offset, patch, r, half), C, r, taps};
  at::Tensor prob = at::zeros({N, h, w}, act.options());
  at::Tensor corners = at::empty({N, num, 2}, act.options().dtype(at::kLong));
  const int64_t nx = g.x.hi - g.x.lo;
  // Scratch, fully written before it is read: no zero-filling.
  std::unique_ptr<double[]> hx(new double[(size_t)((g.y.need_hi - g.y.need_lo) * nx)]);
  std::unique_ptr<double[]> s(new double[(size_t)((g.y.hi - g.y.lo) * nx)]);
  for (int64_t n = 0; n < N; ++n) {
    smoothed_valid(act.data_ptr<float>() + n * C * h * w, g, hx.get(), s.get());
    float* p = prob.data_ptr<float>() + n * h * w;
    normalise(s.get(), g, p);
    draw(p, g, n, num, (uint64_t)seed, corners.data_ptr<int64_t>() + n * num * 2);
  }
  return {prob, corners};
}

}  // namespace

DCTQA_KERNEL(CPU, "sample_patches", &sample_patches_cpu)

}  // namespace dctqa
