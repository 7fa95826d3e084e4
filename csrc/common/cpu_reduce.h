// Hot loops of the CPU kernels, free of torch headers (see cpu_kernels.cpp).
// Every function works on raw, contiguous float32 buffers.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dctqa {
namespace cpu {

// Width to which rows of filter spectra are padded (a multiple of the widest vector).
constexpr int kRowPad = 16;
inline int padded_width(int w) { return (w + kRowPad - 1) / kRowPad * kRowPad; }

// Filter spectrum rows u and (when `pair`) H-u for one filter, all channels.
//   hre/him: Hv[c][i][v] (C x kh x Wp), the DFT of each filter row along v
//   pre/pim: p_u^i, i < kh, with p_u = exp(-i*pi*u/H)
//   g0re/g0im (row u), g1re/g1im (row H-u): C x Wp each
// Uses p_{H-u}^i = (-1)^i conj(p_u^i), so both rows cost one row's multiplies.
void filter_spectrum_rows(const float* hre, const float* him, const float* pre,
                          const float* pim, int C, int kh, int Wp, bool pair,
                          float* g0re, float* g0im, float* g1re, float* g1im);

// The same for two row pairs at once, (u, H-u) with phases pre0/pim0 and (u', H-u') with
// pre1/pim1, each row spectrum of the filter read once for both (half the cache traffic).
// out: row u re, im, row H-u re, im, row u' re, im, row H-u' re, im (C x Wp each).
// Results are bitwise those of two filter_spectrum_rows calls.
void filter_spectrum_rows2(const float* hre, const float* him, const float* pre0,
                           const float* pim0, const float* pre1, const float* pim1, int C,
                           int kh, int Wp, bool pair0, bool pair1, float* const* out);

// out[v] = 4 |sum_c x[c*cstride + v] * conj(G[c][v])| for v < W (G rows of width Wp).
void magnitude_row(const float* x, std::ptrdiff_t cstride, const float* gre,
                   const float* gim, int C, int W, int Wp, float* out);

// sum_j (ao[j] + eps) / (ac[j] + eps), accumulated in double.
double ratio_sum(const float* ao, const float* ac, std::size_t n, float eps);

// Value of 0-based rank r (ascending) among x[0..n), as torch.kthvalue(k=r+1).
// Radix selection on order-preserving 32-bit keys; does not modify x.
float select_rank(const float* x, std::size_t n, std::size_t r);

// The same with a caller-made sample of s values of x (spread over x; it is reordered):
// the sample only sets a bracket around rank r, the result is exact whatever it holds.
float select_rank_sampled(const float* x, std::size_t n, std::size_t r, float* sample,
                          std::size_t s);

// The same by three radix-histogram passes only (the fallback of select_rank).
float select_rank_radix(const float* x, std::size_t n, std::size_t r);

// Lower median: rank floor((n-1)/2).
inline float lower_median(const float* x, std::size_t n) {
  return select_rank(x, n, (n - 1) / 2);
}

}  // namespace cpu
}  // namespace dctqa
