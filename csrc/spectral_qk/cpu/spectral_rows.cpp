// Hot loops of the spectral kernels: filter-spectrum rows and the channel-sum magnitude,
// in their portable forms (plain loops written for the auto-vectoriser, cloned per ISA by
// common/cpu_clones.h). The x86 forms are in spectral_rows_x86.cpp; the functions below
// that have one call it through the table of common/cpu_features.h.
#include "spectral_qk/cpu/spectral_rows.h"

#include <cmath>
#include <algorithm>
#include <cstring>

// GCC notes (-Wpsabi) that the vf values of fused_tile.h would be passed differently with
// AVX-512; they never cross a call that is not inlined, so the note does not apply here.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "common/cpu_clones.h"
#include "common/cpu_features.h"
#include "common/cpu_reduce.h"
#include "spectral_qk/cpu/fused_tile.h"

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


DCTQA_CLONES
void portable::four_sqrt(float* out, int n) {
  float* __restrict o = out;
  for (int v = 0; v < n; ++v) o[v] = 4.f * std::sqrt(o[v]);
}

void four_sqrt(float* o, int n) { cpu_kernels().four_sqrt(o, n); }

void portable::fused_pair_rows(const float* hre, const float* him, const float* pre, const float* pim, int kh,
                               int W, int Wp, const float* xo_u, const float* xc_u, const float* xo_m,
                               const float* xc_m, std::ptrdiff_t cstride, bool pair, float* const* dst) {
  cpu::fused_pair_rows<4>(hre, him, pre, pim, kh, W, Wp, xo_u, xc_u, xo_m, xc_m, cstride, pair, dst);
}

void fused_pair_magnitudes(const float* hre, const float* him, const float* pre,
                           const float* pim, int kh, int W, int Wp, const float* xo_u,
                           const float* xc_u, const float* xo_m, const float* xc_m,
                           std::ptrdiff_t cstride, bool pair, bool take_sqrt, float* ao_u,
                           float* ac_u, float* ao_m, float* ac_m) {
  float* const dst[4] = {ao_u, ac_u, ao_m, ac_m};
  const CpuKernels& k = cpu_kernels();
  k.fused_pair_rows(hre, him, pre, pim, kh, W, Wp, xo_u, xc_u, xo_m, xc_m, cstride, pair, dst);
  if (take_sqrt)
    for (int f = 0; f < (pair ? 4 : 2); ++f) k.four_sqrt(dst[f], W);
}

DCTQA_CLONES
void gather_u8_stride3(const std::uint8_t* s, float* d, std::int64_t n) {
  const std::uint8_t* __restrict src = s;
  float* __restrict dst = d;
  for (std::int64_t x = 0; x < n; ++x) dst[x] = (float)src[3 * x];  // vectorised (constant stride)
}


DCTQA_CLONES
void portable::ratio_moments(const float* x, const float* y, std::size_t n, float e, float* lanes) {
  constexpr int T = kMomentTerms + 1;
  constexpr std::size_t L = kRowPad;
  const float* __restrict a = x;
  const float* __restrict b = y;
  float* __restrict s = lanes;  // [T][L]
  const std::size_t full = n / L * L;
  for (std::size_t q = 0; q < full; q += L)
    for (std::size_t t = 0; t < L; ++t) {
      const float inv = 1.f / (b[q + t] + e), z = e * inv;
      float p = (a[q + t] - b[q + t]) * inv;  // r - 1, exactly 0 where a == b
      s[t] += p;
      for (int k = 1; k < T; ++k) {
        p *= z;
        s[k * L + t] += p;
      }
    }
  for (std::size_t q = full; q < n; ++q) {
    const std::size_t t = q - full;  // the tail spreads over the lanes (t < L)
    const float inv = 1.f / (b[q] + e), z = e * inv;
    float p = (a[q] - b[q]) * inv;
    s[t] += p;
    for (int k = 1; k < T; ++k) {
      p *= z;
      s[k * L + t] += p;
    }
  }
}

void portable::squared_moments_bracket(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b) {
  const CpuKernels& k = cpu_kernels();
  k.four_sqrt(so, (int)n);
  k.four_sqrt(sc, (int)n);
  moments_bracket(so, sc, n, e, lanes, b);
}

void squared_moments_bracket(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b) {
  cpu_kernels().squared_moments_bracket(so, sc, n, e, lanes, b);
}

void moments_bracket(const float* ao, const float* ac, std::size_t n, float e, float* lanes, Bracket* b) {
  ratio_moments(ao, ac, n, e, lanes);
  if (b->ok) b->ok = bracket_count_gather(ao, n, b->lo, b->hi, b->buf, b->cap, &b->below, &b->cnt);
}

void ratio_moments(const float* x, const float* y, std::size_t n, float e, float* lanes) {
  cpu_kernels().ratio_moments(x, y, n, e, lanes);
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
