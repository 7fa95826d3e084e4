// Hot loops of the CPU kernels. Plain loops written for the auto-vectoriser; each
// vectorisable function is cloned for x86-64-v4 (AVX-512), x86-64-v3 (AVX2+FMA) and
// the baseline, and chosen at load time (GCC function multi-versioning), so the
// distributed build needs no -march flag.
#include "cpu_kernels.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64))
#include <immintrin.h>
#define DCTQA_HAVE_AVX512_PATH 1
#endif

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(_M_X64)) && \
    defined(__linux__)
#define DCTQA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DCTQA_CLONES
#endif

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
double ratio_sum(const float* ao, const float* ac, std::size_t n, float eps) {
  // 16 independent float lanes (vectorisable without reassociation), each summing at
  // most 64 terms before the lanes are added into a double: relative error ~1e-7.
  constexpr std::size_t L = 16, B = 64 * L;
  const float* __restrict a = ao;
  const float* __restrict b = ac;
  double total = 0.0;
  std::size_t j0 = 0;
  for (; j0 + B <= n; j0 += B) {
    float lane[L] = {};
    for (std::size_t q = 0; q < B; q += L)
      for (std::size_t t = 0; t < L; ++t)
        lane[t] += (a[j0 + q + t] + eps) / (b[j0 + q + t] + eps);
    double s = 0.0;
    for (std::size_t t = 0; t < L; ++t) s += lane[t];
    total += s;
  }
  for (; j0 < n; ++j0) total += (double)((a[j0] + eps) / (b[j0] + eps));
  return total;
}

namespace {
inline uint32_t order_key(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float key_value(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
// Finds the bin holding rank r; r becomes the rank inside that bin.
inline uint32_t find_bin(const uint32_t* hist, int nbins, std::size_t& r) {
  for (int b = 0; b < nbins; ++b) {
    if (r < hist[b]) return (uint32_t)b;
    r -= hist[b];
  }
  return (uint32_t)(nbins - 1);  // unreachable when r < n
}
}  // namespace

float select_rank_radix(const float* x, std::size_t n, std::size_t r) {
  // Three histogram passes over the key bits 31..20, 19..8, 7..0. The first pass uses
  // four interleaved histograms so that runs of equal bins do not serialise.
  std::vector<uint32_t> h(4 * 4096);
  uint32_t* h0 = h.data();
  uint32_t* h1 = h0 + 4096;
  uint32_t* h2 = h1 + 4096;
  uint32_t* h3 = h2 + 4096;
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    ++h0[order_key(x[j]) >> 20];
    ++h1[order_key(x[j + 1]) >> 20];
    ++h2[order_key(x[j + 2]) >> 20];
    ++h3[order_key(x[j + 3]) >> 20];
  }
  for (; j < n; ++j) ++h0[order_key(x[j]) >> 20];
  for (int b = 0; b < 4096; ++b) h0[b] += h1[b] + h2[b] + h3[b];
  const uint32_t b1 = find_bin(h0, 4096, r);

  std::fill(h1, h1 + 4096, 0u);
  for (j = 0; j < n; ++j) {
    const uint32_t k = order_key(x[j]);
    if ((k >> 20) == b1) ++h1[(k >> 8) & 0xfffu];
  }
  const uint32_t b2 = find_bin(h1, 4096, r);
  const uint32_t prefix = (b1 << 12) | b2;

  std::fill(h2, h2 + 256, 0u);
  for (j = 0; j < n; ++j) {
    const uint32_t k = order_key(x[j]);
    if ((k >> 8) == prefix) ++h2[k & 0xffu];
  }
  const uint32_t b3 = find_bin(h2, 256, r);
  return key_value((prefix << 8) | b3);
}

namespace {
// below = #{x < lo}; buf[0..cnt) = the x with lo <= x <= hi. buf holds cap + 16 floats.
// Returns false when more than cap elements fall inside (the caller falls back).
bool bracket_pass_scalar(const float* x, std::size_t n, float lo, float hi, float* buf,
                         std::size_t cap, std::size_t* below_out, std::size_t* cnt_out) {
  std::size_t below = 0, cnt = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const float v = x[j];
    below += (v < lo);
    buf[cnt] = v;  // kept only when inside (unpredictable comparisons: no branch)
    cnt += (v >= lo) & (v <= hi);
    if (cnt == cap) return false;
  }
  *below_out = below;
  *cnt_out = cnt;
  return true;
}

#ifdef DCTQA_HAVE_AVX512_PATH
// The same with AVX-512 masks; compress into a register, then a plain store (a
// compressing store to memory is slow on some cores).
__attribute__((target("avx512f"))) bool bracket_pass_avx512(
    const float* x, std::size_t n, float lo, float hi, float* buf, std::size_t cap,
    std::size_t* below_out, std::size_t* cnt_out) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  std::size_t below = 0, cnt = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(x + j);
    const __mmask16 lt = _mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ);
    const __mmask16 in = _mm512_cmp_ps_mask(v, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, vhi, _CMP_LE_OQ);
    below += (std::size_t)__builtin_popcount((unsigned)lt);
    if (in) {
      if (cnt + 16 > cap) return false;
      _mm512_storeu_ps(buf + cnt, _mm512_maskz_compress_ps(in, v));
      cnt += (std::size_t)__builtin_popcount((unsigned)in);
    }
  }
  for (; j < n; ++j) {
    const float v = x[j];
    below += (v < lo);
    if (v >= lo && v <= hi) {
      if (cnt == cap) return false;
      buf[cnt++] = v;
    }
  }
  *below_out = below;
  *cnt_out = cnt;
  return true;
}
#endif

bool bracket_pass(const float* x, std::size_t n, float lo, float hi, float* buf, std::size_t cap,
                  std::size_t* below, std::size_t* cnt) {
#ifdef DCTQA_HAVE_AVX512_PATH
  static const bool avx512 = [] {
    __builtin_cpu_init();  // this library may be loaded before libgcc's init ran for it
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  if (avx512) return bracket_pass_avx512(x, n, lo, hi, buf, cap, below, cnt);
#endif
  return bracket_pass_scalar(x, n, lo, hi, buf, cap, below, cnt);
}
}  // namespace

float select_rank(const float* x, std::size_t n, std::size_t r) {
  // Small inputs: copy and std::nth_element.
  if (n <= 8192) {
    std::vector<float> buf(x, x + n);
    std::nth_element(buf.begin(), buf.begin() + r, buf.end());
    return buf[r];
  }
  const std::size_t s = 8192;
  std::vector<float> sample(s);
  for (std::size_t j = 0; j < s; ++j) sample[j] = x[(j * n) / s + (j * 7919u) % (n / s)];
  return select_rank_sampled(x, n, r, sample.data(), s);
}

float select_rank_sampled(const float* x, std::size_t n, std::size_t r, float* sample_ptr,
                          std::size_t s) {
  if (n <= 8192 || s < 64) {
    std::vector<float> buf(x, x + n);
    std::nth_element(buf.begin(), buf.begin() + r, buf.end());
    return buf[r];
  }
  // Large inputs: bracket rank r between two quantiles of a fixed strided sample
  // (four standard deviations of the sample rank either side), then one pass counts
  // the elements below the bracket and gathers those inside it, and nth_element on
  // the few gathered ones gives the exact value. A bracket that misses (very rare)
  // falls back to radix selection, so the result is exact in every case.
  float* sample = sample_ptr;
  const double q = (double)r * (double)s / (double)n;
  const double d = 4.0 * std::sqrt(q * (1.0 - q / (double)s)) + 2.0;
  const long lo_i = (long)std::floor(q - d), hi_i = (long)std::ceil(q + d);
  const bool has_lo = lo_i >= 0, has_hi = hi_i < (long)s;
  float lo = 0.f, hi = 0.f;
  if (has_lo) {
    std::nth_element(sample, sample + lo_i, sample + s);
    lo = sample[lo_i];
  }
  if (has_hi) {
    std::nth_element(sample, sample + hi_i, sample + s);
    hi = sample[hi_i];
  }
  if (!has_lo && !has_hi) return select_rank_radix(x, n, r);
  // Branch-free pass: count the elements below the bracket, gather those inside it.
  const float lo_eff = has_lo ? lo : -INFINITY;
  const float hi_eff = has_hi ? hi : INFINITY;
  const std::size_t cap =
      (std::size_t)(3.0 * (double)(hi_i - lo_i + 1) * (double)n / (double)s) + 256;
  std::vector<float> inside(cap + 16);
  std::size_t below = 0, cnt = 0;
  const bool overflow = !bracket_pass(x, n, lo_eff, hi_eff, inside.data(), cap, &below, &cnt);
  if (!overflow && below <= r && r < below + cnt) {
    float* buf = inside.data();
    // Many gathered values (large planes): bracket again inside them (cache-resident).
    if (cnt > 32768) return select_rank(buf, cnt, r - below);
    std::nth_element(buf, buf + (r - below), buf + cnt);
    return buf[r - below];
  }
  return select_rank_radix(x, n, r);
}

}  // namespace cpu
}  // namespace dctqa
