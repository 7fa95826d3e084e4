// Hot loops of the spectral kernels: filter-spectrum rows and the channel-sum magnitude.
// Plain loops written for the auto-vectoriser, cloned per ISA (common/cpu_clones.h).
#include "spectral_qk/cpu/spectral_rows.h"

#include <cmath>
#include <algorithm>
#include <cstring>

#include "common/cpu_clones.h"

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
      float* __restrict r0 = g0re + (std::ptrdiff_t)c * Wp + v0;
      float* __restrict i0 = g0im + (std::ptrdiff_t)c * Wp + v0;
      // G[u] = X + iY with X = Xe + Xo, Y = Ye + Yo.
      for (int t = 0; t < VT; ++t) {
        r0[t] = (exr[t] + oxr[t]) - (eyi[t] + oyi[t]);
        i0[t] = (exi[t] + oxi[t]) + (eyr[t] + oyr[t]);
      }
      if (pair) {
        // G[H-u] = X' - iY' with X' = Xe - Xo, Y' = Ye - Yo.
        float* __restrict r1 = g1re + (std::ptrdiff_t)c * Wp + v0;
        float* __restrict i1 = g1im + (std::ptrdiff_t)c * Wp + v0;
        for (int t = 0; t < VT; ++t) {
          r1[t] = (exr[t] - oxr[t]) + (eyi[t] - oyi[t]);
          i1[t] = (exi[t] - oxi[t]) - (eyr[t] - oyr[t]);
        }
      }
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

// Rows u (X + iY) and, when pair, H-u (X' - iY') from the even (e*) and odd (o*) sums.
inline __attribute__((always_inline)) void combine_rows(
    const float* exr, const float* exi, const float* eyr, const float* eyi, const float* oxr,
    const float* oxi, const float* oyr, const float* oyi, bool pair, float* __restrict r0,
    float* __restrict i0, float* __restrict r1, float* __restrict i1) {
  for (int t = 0; t < VT; ++t) {
    r0[t] = (exr[t] + oxr[t]) - (eyi[t] + oyi[t]);
    i0[t] = (exi[t] + oxi[t]) + (eyr[t] + oyr[t]);
  }
  if (!pair) return;
  for (int t = 0; t < VT; ++t) {
    r1[t] = (exr[t] - oxr[t]) + (eyi[t] - oyi[t]);
    i1[t] = (exi[t] - oxi[t]) - (eyr[t] - oyr[t]);
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
void magnitude_row2(const float* x, const float* y, std::ptrdiff_t cstride, const float* gre,
                    const float* gim, int C, int W, int Wp, float* outx, float* outy) {
  (void)C;
  // Tiles of VT lanes (a form GCC vectorises; the plain loop with twelve input streams
  // it does not), then a scalar tail.
  int v0 = 0;
  for (; v0 + VT <= W; v0 += VT) {
    const float* __restrict xa = x + v0;
    const float* __restrict xb = x + cstride + v0;
    const float* __restrict xc = x + 2 * cstride + v0;
    const float* __restrict ya = y + v0;
    const float* __restrict yb = y + cstride + v0;
    const float* __restrict yc = y + 2 * cstride + v0;
    const float* __restrict a0 = gre + v0;
    const float* __restrict a1 = gre + Wp + v0;
    const float* __restrict a2 = gre + 2 * Wp + v0;
    const float* __restrict b0 = gim + v0;
    const float* __restrict b1 = gim + Wp + v0;
    const float* __restrict b2 = gim + 2 * Wp + v0;
    float sr[VT], si[VT], tr[VT], ti[VT];
    for (int t = 0; t < VT; ++t) {
      sr[t] = xa[t] * a0[t] + xb[t] * a1[t] + xc[t] * a2[t];
      si[t] = xa[t] * b0[t] + xb[t] * b1[t] + xc[t] * b2[t];
      tr[t] = ya[t] * a0[t] + yb[t] * a1[t] + yc[t] * a2[t];
      ti[t] = ya[t] * b0[t] + yb[t] * b1[t] + yc[t] * b2[t];
    }
    float* __restrict ox = outx + v0;
    float* __restrict oy = outy + v0;
    for (int t = 0; t < VT; ++t) {
      ox[t] = 4.f * std::sqrt(sr[t] * sr[t] + si[t] * si[t]);
      oy[t] = 4.f * std::sqrt(tr[t] * tr[t] + ti[t] * ti[t]);
    }
  }
  for (int v = v0; v < W; ++v) {
    const float sr = x[v] * gre[v] + x[cstride + v] * gre[Wp + v] + x[2 * cstride + v] * gre[2 * Wp + v];
    const float si = x[v] * gim[v] + x[cstride + v] * gim[Wp + v] + x[2 * cstride + v] * gim[2 * Wp + v];
    const float tr = y[v] * gre[v] + y[cstride + v] * gre[Wp + v] + y[2 * cstride + v] * gre[2 * Wp + v];
    const float ti = y[v] * gim[v] + y[cstride + v] * gim[Wp + v] + y[2 * cstride + v] * gim[2 * Wp + v];
    outx[v] = 4.f * std::sqrt(sr * sr + si * si);
    outy[v] = 4.f * std::sqrt(tr * tr + ti * ti);
  }
}

DCTQA_CLONES
void ratio_moments(const float* x, const float* y, std::size_t n, float e, double* m) {
  // 16 float lanes per sum, each summing at most 64 terms before the lanes go into
  // doubles (as ratio_sum): relative error ~1e-7.
  constexpr int T = kMomentTerms + 1;
  constexpr std::size_t L = 16, B = 64 * L;
  const float* __restrict a = x;
  const float* __restrict b = y;
  for (std::size_t j0 = 0; j0 < n; j0 += B) {
    const std::size_t len = std::min(B, n - j0), full = len / L * L;
    float s[T][L] = {};
    for (std::size_t q = 0; q < full; q += L)
      for (std::size_t t = 0; t < L; ++t) {
        const float inv = 1.f / (b[j0 + q + t] + e);
        const float r = (a[j0 + q + t] + e) * inv, z = e * inv;
        float p = r - 1.f;
        s[0][t] += r;
        for (int k = 1; k < T; ++k) {
          p *= z;
          s[k][t] += p;
        }
      }
    for (std::size_t q = full; q < len; ++q) {
      const float inv = 1.f / (b[j0 + q] + e);
      const float r = (a[j0 + q] + e) * inv, z = e * inv;
      float p = r - 1.f;
      s[0][0] += r;
      for (int k = 1; k < T; ++k) {
        p *= z;
        s[k][0] += p;
      }
    }
    for (int k = 0; k < T; ++k) {
      double acc = 0.0;
      for (std::size_t t = 0; t < L; ++t) acc += s[k][t];
      m[k] += acc;
    }
  }
}

}  // namespace cpu
}  // namespace dctqa
