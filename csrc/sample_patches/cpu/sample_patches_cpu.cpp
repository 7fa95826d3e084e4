// CPU kernel of dctqa::sample_patches: channel mean of |act| and the separable Gaussian
// smoothing fused per row (parallel over rows), then the row sums, normalisation and the
// draws (inverse CDF: binary search over row sums, then a scan of the row).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "sample_patches/sample_patches.h"
#include "sample_patches/sample_patches_checks.h"

namespace dctqa {
namespace {

// Border-renormalised taps: norm[i] = sum of w[|k|] over k with 0 <= i + k < n.
std::vector<double> tap_norms(int64_t n, int64_t r, const std::vector<double>& w) {
  std::vector<double> norm(n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = -r; k <= r; ++k)
      if (i + k >= 0 && i + k < n) norm[i] += w[k < 0 ? -k : k];
  return norm;
}

// s[y, x] (h x w doubles) = smoothed mean_c |a[c, y, x]| where both axes are valid, else 0.
void smoothed_map(const float* a, int64_t C, int64_t h, int64_t w, int64_t r,
                  const std::vector<double>& taps, const std::vector<uint8_t>& vy,
                  const std::vector<uint8_t>& vx, double* s) {
  const int64_t plane = h * w;
  const std::vector<double> nx = tap_norms(w, r, taps), ny = tap_norms(h, r, taps);
  std::vector<double> hx((size_t)plane);
  at::parallel_for(0, h, 1, [&](int64_t b, int64_t e) {
    std::vector<double> m((size_t)w);
    for (int64_t y = b; y < e; ++y) {
      for (int64_t x = 0; x < w; ++x) m[x] = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        const float* row = a + c * plane + y * w;
        for (int64_t x = 0; x < w; ++x) m[x] += std::fabs((double)row[x]);
      }
      for (int64_t x = 0; x < w; ++x) {
        const int64_t k0 = x - r < 0 ? -x : -r, k1 = x + r >= w ? w - 1 - x : r;
        double acc = 0.0;
        for (int64_t k = k0; k <= k1; ++k) acc += taps[k < 0 ? -k : k] * m[x + k];
        hx[y * w + x] = acc / ((double)C * nx[x]);
      }
    }
  });
  at::parallel_for(0, h, 1, [&](int64_t b, int64_t e) {
    for (int64_t y = b; y < e; ++y) {
      double* out = s + y * w;
      for (int64_t x = 0; x < w; ++x) out[x] = 0.0;
      if (!vy[y]) continue;
      const int64_t k0 = y - r < 0 ? -y : -r, k1 = y + r >= h ? h - 1 - y : r;
      for (int64_t k = k0; k <= k1; ++k) {
        const double t = taps[k < 0 ? -k : k] / ny[y];
        const double* src = hx.data() + (y + k) * w;
        for (int64_t x = 0; x < w; ++x) out[x] += t * src[x];
      }
      for (int64_t x = 0; x < w; ++x)
        if (!vx[x]) out[x] = 0.0;
    }
  });
}

// Normalise s into p (float); uniform over the valid cells if s has no mass.
void normalise(double* s, int64_t h, int64_t w, const std::vector<uint8_t>& vy,
               const std::vector<uint8_t>& vx, float* p) {
  double total = 0.0;
  for (int64_t y = 0; y < h; ++y) {
    double r = 0.0;
    for (int64_t x = 0; x < w; ++x) r += s[y * w + x];
    total += r;
  }
  TORCH_CHECK(std::isfinite(total), "dctqa: sample_patches got non-finite activations");
  if (!(total > 0.0)) {
    total = 0.0;
    for (int64_t y = 0; y < h; ++y) {
      double r = 0.0;
      for (int64_t x = 0; x < w; ++x) r += (s[y * w + x] = (vy[y] && vx[x]) ? 1.0 : 0.0);
      total += r;
    }
  }
  for (int64_t i = 0; i < h * w; ++i) p[i] = (float)(s[i] / total);
}

void draw(const float* p, int64_t h, int64_t w, int64_t n, int64_t num, uint64_t seed,
          const std::vector<int64_t>& cy, const std::vector<int64_t>& cx, int64_t* out) {
  std::vector<double> cdf((size_t)h);
  double run = 0.0;
  for (int64_t y = 0; y < h; ++y) {
    double r = 0.0;
    for (int64_t x = 0; x < w; ++x) r += (double)p[y * w + x];
    cdf[y] = (run += r);
  }
  for (int64_t j = 0; j < num; ++j) {
    const double target = patches::uniform01(seed, n, num, j) * cdf[h - 1];
    const int64_t y = patches::upper_index(cdf.data(), h, target);
    const int64_t x = patches::pick_in_row(p + y * w, w, target - (y > 0 ? cdf[y - 1] : 0.0));
    out[2 * j] = cy[y];
    out[2 * j + 1] = cx[x];
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
  std::vector<uint8_t> vy((size_t)h), vx((size_t)w);
  std::vector<int64_t> cy((size_t)h), cx((size_t)w);
  patches::make_axis(h, height, stride, offset, patch, vy.data(), cy.data());
  patches::make_axis(w, width, stride, offset, patch, vx.data(), cx.data());
  const int64_t r = patches::gauss_radius(sigma);
  std::vector<double> taps((size_t)r + 1);
  patches::gauss_taps(sigma, r, taps.data());
  at::Tensor prob = at::empty({N, h, w}, act.options());
  at::Tensor corners = at::empty({N, num, 2}, act.options().dtype(at::kLong));
  std::vector<double> s((size_t)(h * w));
  for (int64_t n = 0; n < N; ++n) {
    smoothed_map(act.data_ptr<float>() + n * C * h * w, C, h, w, r, taps, vy, vx, s.data());
    float* p = prob.data_ptr<float>() + n * h * w;
    normalise(s.data(), h, w, vy, vx, p);
    draw(p, h, w, n, num, (uint64_t)seed, cy, cx, corners.data_ptr<int64_t>() + n * num * 2);
  }
  return {prob, corners};
}

}  // namespace

TORCH_LIBRARY_IMPL(dctqa, CPU, m) { m.impl("sample_patches", &sample_patches_cpu); }

}  // namespace dctqa
