// Pieces of dctqa::sample_patches shared by the CPU and CUDA kernels (and mirrored by the
// Python fallback in dctqa/ops/patches_torch.py): the counter-based random numbers, the cell ->
// patch-corner mapping and the Gaussian taps. Free of torch headers (included by .cu).
#pragma once
#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define DCTQA_HD __host__ __device__ __forceinline__
#else
#define DCTQA_HD inline
#endif

namespace dctqa {
namespace patches {

// SplitMix64 finaliser (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
DCTQA_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform double in [0, 1) for draw `j` of frame `n`: mix64(mix64(seed) + n * num + j), top 53 bits.
DCTQA_HD double uniform01(uint64_t seed, int64_t n, int64_t num, int64_t j) {
  const uint64_t x = mix64(mix64(seed) + (uint64_t)(n * num + j));
  return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

// Top-left coordinate (frame pixels) of the patch centred on cell i, before clamping.
DCTQA_HD int64_t raw_corner(int64_t i, int64_t stride, int64_t offset, int64_t patch) {
  return i * stride + offset - patch / 2;
}

DCTQA_HD int64_t clamp_corner(int64_t c, int64_t size, int64_t patch) {
  return c < 0 ? 0 : (c > size - patch ? size - patch : c);
}

// Number of Gaussian taps each side: ceil(3 sigma), 0 for sigma <= 0.
inline int64_t gauss_radius(double sigma) { return sigma > 0 ? (int64_t)ceil(3.0 * sigma) : 0; }

// Unnormalised taps w[k] = exp(-k^2 / (2 sigma^2)), k = 0..radius (w[0] = 1).
inline void gauss_taps(double sigma, int64_t radius, double* w) {
  w[0] = 1.0;
  for (int64_t k = 1; k <= radius; ++k) w[k] = exp(-(double)(k * k) / (2.0 * sigma * sigma));
}

}  // namespace patches
}  // namespace dctqa

namespace dctqa {
namespace patches {

// One axis of the map: valid[i] = 1 where the patch centred on cell i lies inside the
// frame (if no cell qualifies, every cell is valid and its corner is clamped inside);
// corner[i] = clamped top/left of that patch. Host only.
inline void make_axis(int64_t cells, int64_t size, int64_t stride, int64_t offset, int64_t patch,
                      uint8_t* valid, int64_t* corner) {
  int64_t any = 0;
  for (int64_t i = 0; i < cells; ++i) {
    const int64_t c = raw_corner(i, stride, offset, patch);
    valid[i] = (c >= 0 && c <= size - patch) ? 1 : 0;
    any += valid[i];
    corner[i] = clamp_corner(c, size, patch);
  }
  if (any == 0)
    for (int64_t i = 0; i < cells; ++i) valid[i] = 1;
}

// Index of the draw `target` in [0, cdf[n-1]) among n cumulative sums (first cdf > target);
// n - 1 if rounding puts it past the end.
DCTQA_HD int64_t upper_index(const double* cdf, int64_t n, double target) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (cdf[mid] > target) hi = mid; else lo = mid + 1;
  }
  return lo < n ? lo : n - 1;
}

// Column of a draw inside one row of probabilities p[0..w): the first x (with p > 0) where
// the running sum exceeds t; the last positive x if rounding leaves t unreached.
DCTQA_HD int64_t pick_in_row(const float* p, int64_t w, double t) {
  double c = 0.0;
  int64_t last = 0;
  for (int64_t x = 0; x < w; ++x) {
    if (p[x] <= 0.f) continue;
    c += (double)p[x];
    last = x;
    if (c > t) return x;
  }
  return last;
}

}  // namespace patches
}  // namespace dctqa
