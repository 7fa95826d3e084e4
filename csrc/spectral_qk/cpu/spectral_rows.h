// Hot loops of the spectral kernels (see spectral_rows.cpp), free of torch headers.
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

// A^o and A^c of rows u and (when `pair`) H-u of one filter straight from the separable
// form of G (no G row is stored): per tile of kRowPad columns the filter spectrum of each
// channel is built in registers from Hv (hre/him: C=3 x kh x Wp) and the row phases p_u^i
// (pre/pim), and applied to both frames at once. xo_u/xc_u: row u of channel 0 of the
// reference/distorted DCTs, xo_m/xc_m: row H-u, channels cstride apart. Out: W values
// each (ao_m/ac_m only when pair): A when take_sqrt, else (A / 4)^2, the squared channel
// sum (four_sqrt or squared_moments_bracket finish it).
void fused_pair_magnitudes(const float* hre, const float* him, const float* pre,
                           const float* pim, int kh, int W, int Wp, const float* xo_u,
                           const float* xc_u, const float* xo_m, const float* xc_m,
                           std::ptrdiff_t cstride, bool pair, bool take_sqrt, float* ao_u,
                           float* ac_u, float* ao_m, float* ac_m);

// o[v] = 4 sqrt(o[v]) for v < n: (A / 4)^2 to A. With AVX-512 or AVX2 + FMA (the table of
// common/cpu_features.h) by the 14- or 12-bit reciprocal square root and one Newton step (a
// few ulp; values below FLT_MIN give at most ~1e-19), else by sqrt.
void four_sqrt(float* o, int n);

// A median bracket being filled (see squared_moments_bracket): the values below lo are
// counted in `below`, those in [lo, hi] gathered into buf[0..cnt) (room for cap + 16);
// ok turns false for good when more than cap would be gathered.
struct Bracket {
  float lo, hi;
  float* buf;
  std::size_t cap, below, cnt;
  bool ok;
};

// Number of correction terms of ratio_moments.
constexpr int kMomentTerms = 4;

// d[x] = s[3 x] for x < n (one channel of interleaved 8-bit RGB pixels, as float).
void gather_u8_stride3(const std::uint8_t* s, float* d, std::int64_t n);

// Float lanes of the moments: kMomentTerms + 1 sums x kRowPad lanes. Each lane may take at
// most kLaneTerms values between two flushes (relative error ~1e-7 per flush).
constexpr int kLaneTerms = 64;
constexpr int kMomentLanes = (kMomentTerms + 1) * kRowPad;

// For x = ao, y = ac (n values each, n <= kLaneTerms * kRowPad) and a trial floor e > 0,
// adds to the lanes of m[0..kMomentTerms]:
//   m[n] += sum (r_j - 1) z_j^n   (n = 0..kMomentTerms)
// with r_j - 1 = (x_j - y_j) / (y_j + e) (exactly 0 where x_j == y_j, so identical frames
// give Q = 1 exactly) and z_j = e / (y_j + e) in (0, 1]. For the true floor e' = e (1 + d),
// sum (x_j + e') / (y_j + e') = n + sum_k (-d)^k m[k] + R with
// |R| <= sum_j |r_j - 1| |d|^(kMomentTerms+1) / (1 - |d|) (a geometric series in d z_j).
// With AVX-512 or AVX2 + FMA the divisions are reciprocal estimates and one Newton step.
void ratio_moments(const float* x, const float* y, std::size_t n, float e, float* lanes);

// For squared values so, sc (n <= kLaneTerms * kRowPad each, as fused_pair_magnitudes
// gives them without take_sqrt): a = 4 sqrt(so), c = 4 sqrt(sc) as four_sqrt, then
// ratio_moments(a, c, n, e, lanes) and, while b->ok, the bracket pass of a into *b, in one
// pass on AVX-512 (bitwise the same as the three steps). so and sc may be overwritten.
void squared_moments_bracket(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b);

// The same for values that are A already: ratio_moments(ao, ac, n, e, lanes) and, while
// b->ok, the bracket pass of ao into *b.
void moments_bracket(const float* ao, const float* ac, std::size_t n, float e, float* lanes, Bracket* b);

// m[j] += lanes[j] in double for j < kMomentLanes (moment k, lane t at j = k kRowPad + t;
// the lanes are added up when the moments are read); zeroes the lanes.
void flush_moments(float* lanes, double* m);

}  // namespace cpu
}  // namespace dctqa
