// The fused tile of fused_pair_magnitudes (spectral_rows.h), a template over the tile width
// VW: included by spectral_rows.cpp (the portable build, VW = 4) and spectral_rows_x86.cpp
// (the AVX2 + FMA and AVX-512 builds, VW = 8 and 16, inside functions compiled for them).
// Everything here is inline and of internal linkage, so each build is its own code.
#pragma once
#include <cstddef>

#include "spectral_qk/cpu/spectral_rows.h"

namespace dctqa {
namespace cpu {
namespace {

// The filter spectrum of rows u and H-u from the even (e*) and odd (o*) tap sums
// x = sum Re(p) b, y = sum Im(p) b: G[u] = X + iY with X = Xe + Xo, Y = Ye + Yo, and
// G[H-u] = X' - iY' with X' = Xe - Xo, Y' = Ye - Yo (p_{H-u}^i = (-1)^i conj(p_u^i)).
// T: float, or the vector type of the fused kernel below.
template <class T>
inline __attribute__((always_inline)) void spectrum_row_u(const T& exr, const T& exi, const T& eyr,
                                                          const T& eyi, const T& oxr, const T& oxi,
                                                          const T& oyr, const T& oyi, T& re, T& im) {
  re = (exr + oxr) - (eyi + oyi);
  im = (exi + oxi) + (eyr + oyr);
}
template <class T>
inline __attribute__((always_inline)) void spectrum_row_mirror(const T& exr, const T& exi, const T& eyr,
                                                               const T& eyi, const T& oxr, const T& oxi,
                                                               const T& oyr, const T& oyi, T& re, T& im) {
  re = (exr - oxr) + (eyi - oyi);
  im = (exi - oxi) - (eyr - oyr);
}

// VW floats as one value (GCC vector extension: kept in registers). aligned(4): loads and
// stores need no alignment. The tile width VW is the register width of the code it is
// compiled for (see fused_pair_magnitudes): wider, its 24 accumulators would spill.
template <int VW>
struct Vec {
  typedef float type __attribute__((vector_size(4 * VW), aligned(4)));
};
template <int VW>
inline __attribute__((always_inline)) typename Vec<VW>::type vload(const float* p) {
  return *(const typename Vec<VW>::type*)p;
}
template <int VW>
inline __attribute__((always_inline)) void vstore(float* p, typename Vec<VW>::type v) {
  *(typename Vec<VW>::type*)p = v;
}

// One tile of fused_pair_magnitudes: x*[c] point at VW values of channel c (rows u, H-u;
// frames o, c); out[0..3] receive the squared |S| of A^o(u), A^c(u), A^o(H-u), A^c(H-u)
// (VW values each; the caller takes 4 sqrt).
template <int VW, bool kPair, int KH>
inline __attribute__((always_inline)) void fused_tile(
    const float* hre, const float* him, const float* pre, const float* pim, int kh_rt,
    std::ptrdiff_t cs, std::ptrdiff_t is, const float* const* xou, const float* const* xcu,
    const float* const* xom, const float* const* xcm, float* const* out) {
  typedef typename Vec<VW>::type vf;
  const int kh = KH > 0 ? KH : kh_rt;  // a constant for the common sizes: taps unrolled
  const vf z = {};
  // Per channel, even (a[c][0..3]) and odd (a[c][4..7]) taps: x = sum Re(p) b, y = sum
  // Im(p) b (re, im of b). Taps outside, channels inside: each phase p_u^i is loaded once
  // for the three channels (24 accumulators stay in registers).
  vf a[3][8];
#pragma GCC unroll 3
  for (int c = 0; c < 3; ++c)
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) a[c][j] = z;
#pragma GCC unroll 8
  for (int i = 0; i < kh; ++i) {
    const float pr = pre[i], pi = pim[i];
    const int o = (i & 1) * 4;
#pragma GCC unroll 3
    for (int c = 0; c < 3; ++c) {
      const vf br = vload<VW>(hre + c * cs + i * is), bi = vload<VW>(him + c * cs + i * is);
      a[c][o] += pr * br, a[c][o + 1] += pr * bi, a[c][o + 2] += pi * br, a[c][o + 3] += pi * bi;
    }
  }
  vf s0 = z, s1 = z, s2 = z, s3 = z, s4 = z, s5 = z, s6 = z, s7 = z;
#pragma GCC unroll 3
  for (int c = 0; c < 3; ++c) {
    const vf* e = a[c];
    const vf* d = a[c] + 4;
    vf gr, gi;
    spectrum_row_u(e[0], e[1], e[2], e[3], d[0], d[1], d[2], d[3], gr, gi);
    const vf xa = vload<VW>(xou[c]), xb = vload<VW>(xcu[c]);
    s0 += xa * gr, s1 += xa * gi, s2 += xb * gr, s3 += xb * gi;
    if (kPair) {
      vf mr, mi;
      spectrum_row_mirror(e[0], e[1], e[2], e[3], d[0], d[1], d[2], d[3], mr, mi);
      const vf am = vload<VW>(xom[c]), bm = vload<VW>(xcm[c]);
      s4 += am * mr, s5 += am * mi, s6 += bm * mr, s7 += bm * mi;
    }
  }
  vstore<VW>(out[0], s0 * s0 + s1 * s1);
  vstore<VW>(out[1], s2 * s2 + s3 * s3);
  if (kPair) {
    vstore<VW>(out[2], s4 * s4 + s5 * s5);
    vstore<VW>(out[3], s6 * s6 + s7 * s7);
  }
}
template <int VW, bool kPair, int KH>
inline __attribute__((always_inline)) void fused_rows(
    const float* hre, const float* him, const float* pre, const float* pim, int kh, int W,
    int Wp, const float* xo_u, const float* xc_u, const float* xo_m, const float* xc_m,
    std::ptrdiff_t cstride, float* const* dst) {
  const std::ptrdiff_t cs = (std::ptrdiff_t)kh * Wp;
  int v0 = 0;
  for (; v0 + VW <= W; v0 += VW) {
    const float* xou[3] = {xo_u + v0, xo_u + cstride + v0, xo_u + 2 * cstride + v0};
    const float* xcu[3] = {xc_u + v0, xc_u + cstride + v0, xc_u + 2 * cstride + v0};
    const float* xom[3] = {xo_m + v0, xo_m + cstride + v0, xo_m + 2 * cstride + v0};
    const float* xcm[3] = {xc_m + v0, xc_m + cstride + v0, xc_m + 2 * cstride + v0};
    float* out[4] = {dst[0] + v0, dst[1] + v0, dst[2] + v0, dst[3] + v0};
    fused_tile<VW, kPair, KH>(hre + v0, him + v0, pre, pim, kh, cs, Wp, xou, xcu, xom, xcm, out);
  }
  if (v0 < W) {  // the last, partial tile through zero-padded copies (Hv rows are padded)
    const int n = W - v0;
    float buf[12][VW] = {}, res[4][VW];
    const float* src[4] = {xo_u, xc_u, xo_m, xc_m};
    for (int f = 0; f < (kPair ? 4 : 2); ++f)
      for (int c = 0; c < 3; ++c)
        for (int t = 0; t < n; ++t) buf[f * 3 + c][t] = src[f][c * cstride + v0 + t];
    const float* xou[3] = {buf[0], buf[1], buf[2]};
    const float* xcu[3] = {buf[3], buf[4], buf[5]};
    const float* xom[3] = {buf[6], buf[7], buf[8]};
    const float* xcm[3] = {buf[9], buf[10], buf[11]};
    float* out[4] = {res[0], res[1], res[2], res[3]};
    fused_tile<VW, kPair, KH>(hre + v0, him + v0, pre, pim, kh, cs, Wp, xou, xcu, xom, xcm, out);
    for (int f = 0; f < (kPair ? 4 : 2); ++f)
      for (int t = 0; t < n; ++t) dst[f][v0 + t] = res[f][t];
  }
}

// fused_pair_magnitudes' rows at tile width VW. The filter heights of the built-in
// detectors (YOLOX's 6 x 6 stem, ResNet's 7 x 7) get their taps unrolled; any other height
// runs the same code with a loop.
template <int VW>
inline __attribute__((always_inline)) void fused_pair_rows(
    const float* hre, const float* him, const float* pre, const float* pim, int kh, int W, int Wp,
    const float* xo_u, const float* xc_u, const float* xo_m, const float* xc_m, std::ptrdiff_t cstride,
    bool pair, float* const* dst) {
#define DCTQA_FUSED_ROWS(P, K) \
  fused_rows<VW, P, K>(hre, him, pre, pim, kh, W, Wp, xo_u, xc_u, xo_m, xc_m, cstride, dst)
  switch (pair ? kh : -kh) {
    case 6: DCTQA_FUSED_ROWS(true, 6); break;
    case 7: DCTQA_FUSED_ROWS(true, 7); break;
    case -6: DCTQA_FUSED_ROWS(false, 6); break;
    case -7: DCTQA_FUSED_ROWS(false, 7); break;
    default:
      if (pair) DCTQA_FUSED_ROWS(true, 0);
      else DCTQA_FUSED_ROWS(false, 0);
  }
#undef DCTQA_FUSED_ROWS
}

}  // namespace
}  // namespace cpu
}  // namespace dctqa
