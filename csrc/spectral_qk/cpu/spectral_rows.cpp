// Hot loops of the spectral kernels: filter-spectrum rows and the channel-sum magnitude.
// Plain loops written for the auto-vectoriser, cloned per ISA (common/cpu_clones.h).
#include "spectral_qk/cpu/spectral_rows.h"

#include <cmath>
#include <algorithm>
#include <cstring>

#include "common/cpu_clones.h"
#include "common/cpu_reduce.h"
#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64))
#include <immintrin.h>
#define DCTQA_HAVE_AVX512_PATH 1
#endif

// GCC notes (-Wpsabi) that the vf values below would be passed differently with AVX-512;
// they never cross a call that is not inlined, so the note does not apply here.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace dctqa {
namespace cpu {

namespace {
constexpr int VT = kRowPad;  // v-tile held in registers

// Accumulates sum_{i = i0, i0+2, ...} p_i * b_i split in the real/imag parts of p:
// xr += pr*br, xi += pr*bi, yr += pi*br, yi += pi*bi (vectors of VT lanes).
inline __attribute__((always_inline)) void accumulate_parity(
    const float* hre, const float* him, const float* pre, const float* pim, int kh,
    int i0, std::ptrdiff_t istride, float* __restrict xr, float* __restrict xi,
    float* __restrict yr, float* __restrict yi) {
  for (int i = i0; i < kh; i += 2) {
    const float ar = pre[i], ai = pim[i];
    const float* __restrict br = hre + i * istride;
    const float* __restrict bi = him + i * istride;
    for (int t = 0; t < VT; ++t) {
      xr[t] += ar * br[t];
      xi[t] += ar * bi[t];
      yr[t] += ai * br[t];
      yi[t] += ai * bi[t];
    }
  }
}

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

// Rows u and, when pair, H-u of VT lanes from the even (e*) and odd (o*) sums.
inline __attribute__((always_inline)) void combine_rows(
    const float* exr, const float* exi, const float* eyr, const float* eyi, const float* oxr,
    const float* oxi, const float* oyr, const float* oyi, bool pair, float* __restrict r0,
    float* __restrict i0, float* __restrict r1, float* __restrict i1) {
  for (int t = 0; t < VT; ++t)
    spectrum_row_u(exr[t], exi[t], eyr[t], eyi[t], oxr[t], oxi[t], oyr[t], oyi[t], r0[t], i0[t]);
  if (!pair) return;
  for (int t = 0; t < VT; ++t)
    spectrum_row_mirror(exr[t], exi[t], eyr[t], eyi[t], oxr[t], oxi[t], oyr[t], oyi[t], r1[t], i1[t]);
}
}  // namespace

DCTQA_CLONES
void filter_spectrum_rows(const float* hre, const float* him, const float* pre,
                          const float* pim, int C, int kh, int Wp, bool pair,
                          float* g0re, float* g0im, float* g1re, float* g1im) {
  const std::ptrdiff_t istride = Wp;
  for (int c = 0; c < C; ++c) {
    const float* hrc = hre + (std::ptrdiff_t)c * kh * Wp;
    const float* hic = him + (std::ptrdiff_t)c * kh * Wp;
    for (int v0 = 0; v0 < Wp; v0 += VT) {
      float exr[VT], exi[VT], eyr[VT], eyi[VT], oxr[VT], oxi[VT], oyr[VT], oyi[VT];
      for (int t = 0; t < VT; ++t) {
        exr[t] = exi[t] = eyr[t] = eyi[t] = 0.f;
        oxr[t] = oxi[t] = oyr[t] = oyi[t] = 0.f;
      }
      accumulate_parity(hrc + v0, hic + v0, pre, pim, kh, 0, istride, exr, exi, eyr, eyi);
      accumulate_parity(hrc + v0, hic + v0, pre, pim, kh, 1, istride, oxr, oxi, oyr, oyi);
      const std::ptrdiff_t co = (std::ptrdiff_t)c * Wp + v0;
      combine_rows(exr, exi, eyr, eyi, oxr, oxi, oyr, oyi, pair, g0re + co, g0im + co,
                   pair ? g1re + co : nullptr, pair ? g1im + co : nullptr);
    }
  }
}

namespace {
// accumulate_parity for two rows' phases (p, q) at once: each b_i is loaded once.
inline __attribute__((always_inline)) void accumulate_parity2(
    const float* hre, const float* him, const float* pre, const float* pim, const float* qre,
    const float* qim, int kh, int i0, std::ptrdiff_t istride, float* __restrict xr,
    float* __restrict xi, float* __restrict yr, float* __restrict yi, float* __restrict zr,
    float* __restrict zi, float* __restrict wr, float* __restrict wi) {
  for (int i = i0; i < kh; i += 2) {
    const float ar = pre[i], ai = pim[i], cr = qre[i], ci = qim[i];
    const float* __restrict br = hre + i * istride;
    const float* __restrict bi = him + i * istride;
    for (int t = 0; t < VT; ++t) {
      xr[t] += ar * br[t];
      xi[t] += ar * bi[t];
      yr[t] += ai * br[t];
      yi[t] += ai * bi[t];
      zr[t] += cr * br[t];
      zi[t] += cr * bi[t];
      wr[t] += ci * br[t];
      wi[t] += ci * bi[t];
    }
  }
}

}  // namespace

DCTQA_CLONES
void filter_spectrum_rows2(const float* hre, const float* him, const float* pre0,
                           const float* pim0, const float* pre1, const float* pim1, int C,
                           int kh, int Wp, bool pair0, bool pair1, float* const* out) {
  const std::ptrdiff_t istride = Wp;
  for (int c = 0; c < C; ++c) {
    const float* hrc = hre + (std::ptrdiff_t)c * kh * Wp;
    const float* hic = him + (std::ptrdiff_t)c * kh * Wp;
    const std::ptrdiff_t co = (std::ptrdiff_t)c * Wp;
    for (int v0 = 0; v0 < Wp; v0 += VT) {
      // Row pair 0: a*, row pair 1: b*; e = even taps, o = odd taps.
      float aexr[VT], aexi[VT], aeyr[VT], aeyi[VT], bexr[VT], bexi[VT], beyr[VT], beyi[VT];
      float aoxr[VT], aoxi[VT], aoyr[VT], aoyi[VT], boxr[VT], boxi[VT], boyr[VT], boyi[VT];
      for (int t = 0; t < VT; ++t) {
        aexr[t] = aexi[t] = aeyr[t] = aeyi[t] = bexr[t] = bexi[t] = beyr[t] = beyi[t] = 0.f;
        aoxr[t] = aoxi[t] = aoyr[t] = aoyi[t] = boxr[t] = boxi[t] = boyr[t] = boyi[t] = 0.f;
      }
      accumulate_parity2(hrc + v0, hic + v0, pre0, pim0, pre1, pim1, kh, 0, istride, aexr, aexi,
                         aeyr, aeyi, bexr, bexi, beyr, beyi);
      accumulate_parity2(hrc + v0, hic + v0, pre0, pim0, pre1, pim1, kh, 1, istride, aoxr, aoxi,
                         aoyr, aoyi, boxr, boxi, boyr, boyi);
      combine_rows(aexr, aexi, aeyr, aeyi, aoxr, aoxi, aoyr, aoyi, pair0, out[0] + co + v0,
                   out[1] + co + v0, out[2] + co + v0, out[3] + co + v0);
      combine_rows(bexr, bexi, beyr, beyi, boxr, boxi, boyr, boyi, pair1, out[4] + co + v0,
                   out[5] + co + v0, out[6] + co + v0, out[7] + co + v0);
    }
  }
}

DCTQA_CLONES
void magnitude_row(const float* x, std::ptrdiff_t cstride, const float* gre,
                   const float* gim, int C, int W, int Wp, float* out) {
  float* __restrict o = out;
  if (C == 3) {
    const float* __restrict x0 = x;
    const float* __restrict x1 = x + cstride;
    const float* __restrict x2 = x + 2 * cstride;
    const float* __restrict a0 = gre;
    const float* __restrict a1 = gre + Wp;
    const float* __restrict a2 = gre + 2 * Wp;
    const float* __restrict b0 = gim;
    const float* __restrict b1 = gim + Wp;
    const float* __restrict b2 = gim + 2 * Wp;
    for (int v = 0; v < W; ++v) {
      const float sr = x0[v] * a0[v] + x1[v] * a1[v] + x2[v] * a2[v];
      const float si = x0[v] * b0[v] + x1[v] * b1[v] + x2[v] * b2[v];
      o[v] = 4.f * std::sqrt(sr * sr + si * si);
    }
    return;
  }
  for (int v = 0; v < W; ++v) o[v] = 0.f;
  // Generic channel count: accumulate the real part into o, the imaginary part in a
  // second sweep would need a buffer; do both with a small stack tile instead.
  constexpr int T = 256;
  float sr[T], si[T];
  for (int v0 = 0; v0 < W; v0 += T) {
    const int n = (W - v0) < T ? (W - v0) : T;
    for (int t = 0; t < n; ++t) sr[t] = si[t] = 0.f;
    for (int c = 0; c < C; ++c) {
      const float* __restrict xc = x + c * cstride + v0;
      const float* __restrict ac = gre + (std::ptrdiff_t)c * Wp + v0;
      const float* __restrict bc = gim + (std::ptrdiff_t)c * Wp + v0;
      for (int t = 0; t < n; ++t) {
        sr[t] += xc[t] * ac[t];
        si[t] += xc[t] * bc[t];
      }
    }
    for (int t = 0; t < n; ++t) o[v0 + t] = 4.f * std::sqrt(sr[t] * sr[t] + si[t] * si[t]);
  }
}

namespace {
#ifdef DCTQA_HAVE_AVX512_PATH
// o[v] = 4 sqrt(o[v]) by the 14-bit reciprocal square root and one Newton step
// (relative error a few ulp; vsqrtps is several times slower). Values below FLT_MIN give
// about 0 (at most ~1e-19), NaN stays NaN.
__attribute__((target("avx512f"), always_inline)) inline __m512 four_sqrt_vec(__m512 x, __mmask16 m) {
  const __m512 tiny = _mm512_set1_ps(1.17549435e-38f), three = _mm512_set1_ps(3.f),
               two = _mm512_set1_ps(2.f);
  const __m512 y = _mm512_maskz_rsqrt14_ps(m, _mm512_maskz_max_ps(m, tiny, x));
  const __m512 s = _mm512_mul_ps(x, y);            // ~ sqrt(x)
  const __m512 t = _mm512_fnmadd_ps(s, y, three);  // 3 - s y
  return _mm512_mul_ps(_mm512_mul_ps(two, s), t);  // 4 * s (3 - s y) / 2
}

__attribute__((target("avx512f"))) void four_sqrt_avx512(float* o, int n) {
  for (int v = 0; v < n; v += 16) {
    const __mmask16 m = n - v >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - v)) - 1u);
    _mm512_mask_storeu_ps(o + v, m, four_sqrt_vec(_mm512_maskz_loadu_ps(m, o + v), m));
  }
}
#endif

DCTQA_CLONES
void four_sqrt_generic(float* out, int n) {
  float* __restrict o = out;
  for (int v = 0; v < n; ++v) o[v] = 4.f * std::sqrt(o[v]);
}

#ifdef DCTQA_HAVE_AVX512_PATH
// The same with AVX2 + FMA: the 12-bit estimate and one Newton step (about 1 ulp more than
// the AVX-512 form); the tail (n % 8) as four_sqrt_generic.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 four_sqrt_vec8(__m256 x) {
  const __m256 tiny = _mm256_set1_ps(1.17549435e-38f), three = _mm256_set1_ps(3.f), two = _mm256_set1_ps(2.f);
  const __m256 y = _mm256_rsqrt_ps(_mm256_max_ps(tiny, x));  // NaN x stays NaN (max returns x)
  const __m256 s = _mm256_mul_ps(x, y);
  return _mm256_mul_ps(_mm256_mul_ps(two, s), _mm256_fnmadd_ps(s, y, three));
}

__attribute__((target("avx2,fma"))) void four_sqrt_avx2(float* o, int n) {
  int v = 0;
  for (; v + 8 <= n; v += 8) _mm256_storeu_ps(o + v, four_sqrt_vec8(_mm256_loadu_ps(o + v)));
  four_sqrt_generic(o + v, n - v);
}
#endif

}  // namespace

void four_sqrt(float* o, int n) {
#ifdef DCTQA_HAVE_AVX512_PATH
  if (use_avx512()) return four_sqrt_avx512(o, n);
  if (use_avx2_fma()) return four_sqrt_avx2(o, n);
#endif
  four_sqrt_generic(o, n);
}

namespace {
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

// One build per register width: AVX-512 (16 floats), AVX2 + FMA (8), the baseline (4).
#define DCTQA_FUSED_ARGS                                                                       \
  const float *hre, const float *him, const float *pre, const float *pim, int kh, int W, int Wp, \
      const float *xo_u, const float *xc_u, const float *xo_m, const float *xc_m,                \
      std::ptrdiff_t cstride, bool pair, float *const *dst
#define DCTQA_FUSED_PASS hre, him, pre, pim, kh, W, Wp, xo_u, xc_u, xo_m, xc_m, cstride, pair, dst
#if defined(DCTQA_HAVE_AVX512_PATH) && !defined(__clang__)
#define DCTQA_FUSED_WIDTHS 1
__attribute__((target("arch=x86-64-v4"))) void fused_pair_rows_v4(DCTQA_FUSED_ARGS) {
  fused_pair_rows<16>(DCTQA_FUSED_PASS);
}
__attribute__((target("arch=x86-64-v3"))) void fused_pair_rows_v3(DCTQA_FUSED_ARGS) {
  fused_pair_rows<8>(DCTQA_FUSED_PASS);
}
#endif
void fused_pair_rows_base(DCTQA_FUSED_ARGS) { fused_pair_rows<4>(DCTQA_FUSED_PASS); }
}  // namespace

void fused_pair_magnitudes(const float* hre, const float* him, const float* pre,
                           const float* pim, int kh, int W, int Wp, const float* xo_u,
                           const float* xc_u, const float* xo_m, const float* xc_m,
                           std::ptrdiff_t cstride, bool pair, bool take_sqrt, float* ao_u,
                           float* ac_u, float* ao_m, float* ac_m) {
  float* const dst[4] = {ao_u, ac_u, ao_m, ac_m};
#ifdef DCTQA_FUSED_WIDTHS
  if (use_avx512()) {
    fused_pair_rows_v4(DCTQA_FUSED_PASS);
  } else if (use_avx2_fma()) {
    fused_pair_rows_v3(DCTQA_FUSED_PASS);
  } else {
    fused_pair_rows_base(DCTQA_FUSED_PASS);
  }
#else
  fused_pair_rows_base(DCTQA_FUSED_PASS);
#endif
  if (take_sqrt)
    for (int f = 0; f < (pair ? 4 : 2); ++f) four_sqrt(dst[f], W);
}
#undef DCTQA_FUSED_ARGS
#undef DCTQA_FUSED_PASS

DCTQA_CLONES
void gather_u8_stride3(const std::uint8_t* s, float* d, std::int64_t n) {
  const std::uint8_t* __restrict src = s;
  float* __restrict dst = d;
  for (std::int64_t x = 0; x < n; ++x) dst[x] = (float)src[3 * x];  // vectorised (constant stride)
}

DCTQA_CLONES
void ratio_moments_generic(const float* x, const float* y, std::size_t n, float e, float* lanes) {
  constexpr int T = kMomentTerms + 1;
  constexpr std::size_t L = kRowPad;
  const float* __restrict a = x;
  const float* __restrict b = y;
  float* __restrict s = lanes;  // [T][L]
  const std::size_t full = n / L * L;
  for (std::size_t q = 0; q < full; q += L)
    for (std::size_t t = 0; t < L; ++t) {
      const float inv = 1.f / (b[q + t] + e);
      const float r = (a[q + t] + e) * inv, z = e * inv;
      float p = r - 1.f;
      s[t] += r;
      for (int k = 1; k < T; ++k) {
        p *= z;
        s[k * L + t] += p;
      }
    }
  for (std::size_t q = full; q < n; ++q) {
    const std::size_t t = q - full;  // the tail spreads over the lanes (t < L)
    const float inv = 1.f / (b[q] + e);
    const float r = (a[q] + e) * inv, z = e * inv;
    float p = r - 1.f;
    s[t] += r;
    for (int k = 1; k < T; ++k) {
      p *= z;
      s[k * L + t] += p;
    }
  }
}

#ifdef DCTQA_HAVE_AVX512_PATH
namespace {
// One vector of ratio_moments (lanes in m): the 14-bit reciprocal and one Newton step
// instead of a division (relative error a few ulp).
__attribute__((target("avx512f"), always_inline)) inline void moments_vec(__m512 a, __m512 c, __m512 ve, __mmask16 m,
                                                                          __m512* s) {
  const __m512 one = _mm512_set1_ps(1.f), two = _mm512_set1_ps(2.f);
  const __m512 d = _mm512_add_ps(c, ve);
  __m512 inv = _mm512_maskz_rcp14_ps(m, d);
  inv = _mm512_mul_ps(inv, _mm512_fnmadd_ps(d, inv, two));
  const __m512 r = _mm512_mul_ps(_mm512_add_ps(a, ve), inv);
  const __m512 z = _mm512_mul_ps(ve, inv);
  __m512 p = _mm512_sub_ps(r, one);
  s[0] = _mm512_mask_add_ps(s[0], m, s[0], r);
  for (int k = 1; k <= kMomentTerms; ++k) {
    p = _mm512_mul_ps(p, z);
    s[k] = _mm512_mask_add_ps(s[k], m, s[k], p);
  }
}

// ratio_moments; the tail (n % 16 values) goes to the first lanes.
__attribute__((target("avx512f"))) void ratio_moments_avx512(const float* x, const float* y,
                                                             std::size_t n, float e, float* lanes) {
  static_assert(kRowPad == 16, "one zmm per moment");
  const __m512 ve = _mm512_set1_ps(e);
  __m512 s[kMomentTerms + 1];
  for (int k = 0; k <= kMomentTerms; ++k) s[k] = _mm512_loadu_ps(lanes + 16 * k);
  for (std::size_t q = 0; q < n; q += 16) {
    const __mmask16 m = n - q >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - q)) - 1u);
    moments_vec(_mm512_maskz_loadu_ps(m, x + q), _mm512_maskz_loadu_ps(m, y + q), ve, m, s);
  }
  for (int k = 0; k <= kMomentTerms; ++k) _mm512_storeu_ps(lanes + 16 * k, s[k]);
}

// ratio_moments with AVX2 + FMA (the 12-bit reciprocal estimate and one Newton step): 16
// values per step in two halves of 8 lanes; the tail (n % 16) as ratio_moments_generic.
__attribute__((target("avx2,fma"))) void ratio_moments_avx2(const float* x, const float* y, std::size_t n,
                                                           float e, float* lanes) {
  const __m256 ve = _mm256_set1_ps(e), one = _mm256_set1_ps(1.f), two = _mm256_set1_ps(2.f);
  const std::size_t full = n / 16 * 16;
  for (int h = 0; h < 2; ++h) {
    __m256 s[kMomentTerms + 1];
    for (int k = 0; k <= kMomentTerms; ++k) s[k] = _mm256_loadu_ps(lanes + 16 * k + 8 * h);
    for (std::size_t q = 8 * h; q < full; q += 16) {
      const __m256 d = _mm256_add_ps(_mm256_loadu_ps(y + q), ve);
      __m256 inv = _mm256_rcp_ps(d);
      inv = _mm256_mul_ps(inv, _mm256_fnmadd_ps(d, inv, two));
      const __m256 r = _mm256_mul_ps(_mm256_add_ps(_mm256_loadu_ps(x + q), ve), inv);
      const __m256 z = _mm256_mul_ps(ve, inv);
      __m256 p = _mm256_sub_ps(r, one);
      s[0] = _mm256_add_ps(s[0], r);
      for (int k = 1; k <= kMomentTerms; ++k) {
        p = _mm256_mul_ps(p, z);
        s[k] = _mm256_add_ps(s[k], p);
      }
    }
    for (int k = 0; k <= kMomentTerms; ++k) _mm256_storeu_ps(lanes + 16 * k + 8 * h, s[k]);
  }
  if (full < n) ratio_moments_generic(x + full, y + full, n - full, e, lanes);
}

// squared_moments_bracket in one pass: the values as four_sqrt_avx512, the moments as
// ratio_moments_avx512 and the bracket as bracket_count_gather (the same results).
__attribute__((target("avx512f"))) void squared_moments_bracket_avx512(const float* so, const float* sc,
                                                                       std::size_t n, float e, float* lanes,
                                                                       Bracket* b) {
  const __m512 ve = _mm512_set1_ps(e);
  __m512 s[kMomentTerms + 1];
  for (int k = 0; k <= kMomentTerms; ++k) s[k] = _mm512_loadu_ps(lanes + 16 * k);
  bool on = b->ok && b->cnt < b->cap;  // as bracket_count_gather
  const __m512 vlo = _mm512_set1_ps(b->lo), vhi = _mm512_set1_ps(b->hi);
  std::size_t below = 0, cnt = b->cnt;
  for (std::size_t q = 0; q < n; q += 16) {
    const __mmask16 m = n - q >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - q)) - 1u);
    const __m512 a = four_sqrt_vec(_mm512_maskz_loadu_ps(m, so + q), m);
    moments_vec(a, four_sqrt_vec(_mm512_maskz_loadu_ps(m, sc + q), m), ve, m, s);
    if (!on) continue;
    const __mmask16 lt = _mm512_mask_cmp_ps_mask(m, a, vlo, _CMP_LT_OQ);
    const __mmask16 in = _mm512_mask_cmp_ps_mask(m, a, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(a, vhi, _CMP_LE_OQ);
    below += (std::size_t)__builtin_popcount((unsigned)lt);
    _mm512_storeu_ps(b->buf + cnt, _mm512_maskz_compress_ps(in, a));  // cnt <= cap here
    cnt += (std::size_t)__builtin_popcount((unsigned)in);
    on = cnt <= b->cap;
  }
  b->ok = on;
  if (on) b->below += below, b->cnt = cnt;
  for (int k = 0; k <= kMomentTerms; ++k) _mm512_storeu_ps(lanes + 16 * k, s[k]);
}
}  // namespace
#endif

void squared_moments_bracket(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b) {
#ifdef DCTQA_HAVE_AVX512_PATH
  if (use_avx512()) return squared_moments_bracket_avx512(so, sc, n, e, lanes, b);
#endif
  four_sqrt(so, (int)n);
  four_sqrt(sc, (int)n);
  moments_bracket(so, sc, n, e, lanes, b);
}

void moments_bracket(const float* ao, const float* ac, std::size_t n, float e, float* lanes, Bracket* b) {
  ratio_moments(ao, ac, n, e, lanes);
  if (b->ok) b->ok = bracket_count_gather(ao, n, b->lo, b->hi, b->buf, b->cap, &b->below, &b->cnt);
}

void ratio_moments(const float* x, const float* y, std::size_t n, float e, float* lanes) {
#ifdef DCTQA_HAVE_AVX512_PATH
  if (use_avx512()) return ratio_moments_avx512(x, y, n, e, lanes);
  if (use_avx2_fma()) return ratio_moments_avx2(x, y, n, e, lanes);
#endif
  ratio_moments_generic(x, y, n, e, lanes);
}

DCTQA_CLONES
void flush_moments(float* lanes, double* m) {
  float* __restrict l = lanes;
  double* __restrict d = m;
  for (int j = 0; j < kMomentLanes; ++j) {  // lane by lane: vectorised, no reassociation
    d[j] += (double)l[j];
    l[j] = 0.f;
  }
}

}  // namespace cpu
}  // namespace dctqa
