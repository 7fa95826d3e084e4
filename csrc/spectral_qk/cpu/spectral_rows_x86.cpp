// The x86 paths of the spectral kernels' hot loops (spectral_rows.h): square roots and
// ratio moments by reciprocal (square-root) estimates and one Newton step, the one-pass
// AVX-512 row reduction, and the AVX2 + FMA / AVX-512 builds of the fused tile
// (fused_tile.h). Reached only through the table of common/cpu_features.h, which
// select_cpu_kernels fills once for the CPU and the intrinsics level.
#include "common/cpu_features.h"

#ifdef DCTQA_HAVE_AVX512_PATH
#include <immintrin.h>

#include <cstddef>

// GCC notes (-Wpsabi) that the vector values below would be passed differently with
// AVX-512; they never cross a call that is not inlined, so the note does not apply here.
#pragma GCC diagnostic ignored "-Wpsabi"

#include "common/cpu_reduce.h"
#include "spectral_qk/cpu/fused_tile.h"
#include "spectral_qk/cpu/spectral_rows.h"

namespace dctqa {
namespace cpu {

namespace {
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

}  // namespace

__attribute__((target("avx512f"))) void x86::four_sqrt_avx512(float* o, int n) {
  for (int v = 0; v < n; v += 16) {
    const __mmask16 m = n - v >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - v)) - 1u);
    _mm512_mask_storeu_ps(o + v, m, four_sqrt_vec(_mm512_maskz_loadu_ps(m, o + v), m));
  }
}

namespace {
// The same with AVX2 + FMA: the 12-bit estimate and one Newton step (about 1 ulp more than
// the AVX-512 form); the tail (n % 8) as portable::four_sqrt.
__attribute__((target("avx2,fma"), always_inline)) inline __m256 four_sqrt_vec8(__m256 x) {
  const __m256 tiny = _mm256_set1_ps(1.17549435e-38f), three = _mm256_set1_ps(3.f), two = _mm256_set1_ps(2.f);
  const __m256 y = _mm256_rsqrt_ps(_mm256_max_ps(tiny, x));  // NaN x stays NaN (max returns x)
  const __m256 s = _mm256_mul_ps(x, y);
  return _mm256_mul_ps(_mm256_mul_ps(two, s), _mm256_fnmadd_ps(s, y, three));
}

}  // namespace

__attribute__((target("avx2,fma"))) void x86::four_sqrt_avx2(float* o, int n) {
  int v = 0;
  for (; v + 8 <= n; v += 8) _mm256_storeu_ps(o + v, four_sqrt_vec8(_mm256_loadu_ps(o + v)));
  portable::four_sqrt(o + v, n - v);
}

// One build per register width: AVX-512 (16 floats), AVX2 + FMA (8), the baseline (4).
#define DCTQA_FUSED_ARGS                                                                       \
  const float *hre, const float *him, const float *pre, const float *pim, int kh, int W, int Wp, \
      const float *xo_u, const float *xc_u, const float *xo_m, const float *xc_m,                \
      std::ptrdiff_t cstride, bool pair, float *const *dst
#define DCTQA_FUSED_PASS hre, him, pre, pim, kh, W, Wp, xo_u, xc_u, xo_m, xc_m, cstride, pair, dst
#if defined(__clang__)
#define DCTQA_TARGET_V4 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define DCTQA_TARGET_V3 __attribute__((target("avx2,fma")))
#else
#define DCTQA_TARGET_V4 __attribute__((target("arch=x86-64-v4")))
#define DCTQA_TARGET_V3 __attribute__((target("arch=x86-64-v3")))
#endif
DCTQA_TARGET_V4 void x86::fused_pair_rows_v4(DCTQA_FUSED_ARGS) {
  fused_pair_rows<16>(DCTQA_FUSED_PASS);
}
DCTQA_TARGET_V3 void x86::fused_pair_rows_v3(DCTQA_FUSED_ARGS) {
  fused_pair_rows<8>(DCTQA_FUSED_PASS);
}

namespace {
// One vector of ratio_moments (lanes in s): the 14-bit reciprocal and one Newton step
// instead of a division (relative error a few ulp). The first moment takes r - 1 as
// (a - c) / (c + e), exactly 0 where a == c whatever the reciprocal's error. a - c is a
// masked subtraction (a builtin the compiler cannot contract): in the one-pass form a and
// c are products still in registers, and a contracted fused multiply-subtract would leave
// the rounding error of c where a == c.
__attribute__((target("avx512f"), always_inline)) inline void moments_vec(__m512 a, __m512 c, __m512 ve, __mmask16 m,
                                                                          __m512* s) {
  const __m512 two = _mm512_set1_ps(2.f);
  const __m512 d = _mm512_add_ps(c, ve);
  __m512 inv = _mm512_maskz_rcp14_ps(m, d);
  inv = _mm512_mul_ps(inv, _mm512_fnmadd_ps(d, inv, two));
  const __m512 z = _mm512_mul_ps(ve, inv);
  __m512 p = _mm512_mul_ps(_mm512_maskz_sub_ps(m, a, c), inv);
  s[0] = _mm512_mask_add_ps(s[0], m, s[0], p);
  for (int k = 1; k <= kMomentTerms; ++k) {
    p = _mm512_mul_ps(p, z);
    s[k] = _mm512_mask_add_ps(s[k], m, s[k], p);
  }
}
}  // namespace

// ratio_moments; the tail (n % 16 values) goes to the first lanes.
__attribute__((target("avx512f"))) void x86::ratio_moments_avx512(const float* x, const float* y,
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
// values per step in two halves of 8 lanes; the tail (n % 16) as portable::ratio_moments.
__attribute__((target("avx2,fma"))) void x86::ratio_moments_avx2(const float* x, const float* y, std::size_t n,
                                                           float e, float* lanes) {
  const __m256 ve = _mm256_set1_ps(e), two = _mm256_set1_ps(2.f);
  const std::size_t full = n / 16 * 16;
  for (int h = 0; h < 2; ++h) {
    __m256 s[kMomentTerms + 1];
    for (int k = 0; k <= kMomentTerms; ++k) s[k] = _mm256_loadu_ps(lanes + 16 * k + 8 * h);
    for (std::size_t q = 8 * h; q < full; q += 16) {
      const __m256 c = _mm256_loadu_ps(y + q);
      const __m256 d = _mm256_add_ps(c, ve);
      __m256 inv = _mm256_rcp_ps(d);
      inv = _mm256_mul_ps(inv, _mm256_fnmadd_ps(d, inv, two));
      const __m256 z = _mm256_mul_ps(ve, inv);
      __m256 p = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + q), c), inv);  // r - 1, 0 where x == y
      s[0] = _mm256_add_ps(s[0], p);
      for (int k = 1; k <= kMomentTerms; ++k) {
        p = _mm256_mul_ps(p, z);
        s[k] = _mm256_add_ps(s[k], p);
      }
    }
    for (int k = 0; k <= kMomentTerms; ++k) _mm256_storeu_ps(lanes + 16 * k + 8 * h, s[k]);
  }
  if (full < n) portable::ratio_moments(x + full, y + full, n - full, e, lanes);
}

// squared_moments_bracket in one pass: the values as four_sqrt_avx512, the moments as
// ratio_moments_avx512 and the bracket as bracket_count_gather (the same results).
__attribute__((target("avx512f"))) void x86::squared_moments_bracket_avx512(float* so, float* sc,
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

}  // namespace cpu
}  // namespace dctqa
#endif
