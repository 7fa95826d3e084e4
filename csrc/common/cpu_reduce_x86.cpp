// The x86 forms of the bracket pass of common/cpu_reduce.cpp (portable::bracket_pass):
// AVX2 (compress by a permutation looked up from the mask) and AVX-512 (mask compress).
// Chosen once through the table of common/cpu_features.h, never by a per-call CPU check.
#include "common/cpu_features.h"

#ifdef DCTQA_HAVE_AVX512_PATH
#include <immintrin.h>

#include <cstdint>

namespace dctqa {
namespace cpu {

// The same with AVX2: 8 values per step, the ones inside moved to the front of the vector by
// a permutation looked up from their mask, then one plain store (as the AVX-512 form).
namespace {
struct CompressTable {
  alignas(32) std::int32_t idx[256][8];
  CompressTable() {
    for (int m = 0; m < 256; ++m) {
      int k = 0;
      for (int b = 0; b < 8; ++b)
        if (m & (1 << b)) idx[m][k++] = b;
      for (; k < 8; ++k) idx[m][k] = 0;
    }
  }
};
}  // namespace

__attribute__((target("avx2,fma"))) bool x86::bracket_pass_avx2(const float* x, std::size_t n, float lo, float hi,
                                                          float* buf, std::size_t cap, std::size_t* below_out,
                                                          std::size_t* cnt_out) {
  static const CompressTable table;
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
  std::size_t below = 0, cnt = 0, j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 v = _mm256_loadu_ps(x + j);
    const unsigned lt = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v, vlo, _CMP_LT_OQ));
    const unsigned in = (unsigned)_mm256_movemask_ps(
        _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ)));
    below += (std::size_t)__builtin_popcount(lt);
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(table.idx[in]));
    _mm256_storeu_ps(buf + cnt, _mm256_permutevar8x32_ps(v, perm));  // cnt <= cap here
    cnt += (std::size_t)__builtin_popcount(in);
    if (cnt > cap) return false;
  }
  std::size_t b = 0, c = 0;
  if (!portable::bracket_pass(x + j, n - j, lo, hi, buf + cnt, cap - cnt, &b, &c)) return false;
  *below_out = below + b;
  *cnt_out = cnt + c;
  return true;
}

// The same with AVX-512 masks; compress into a register, then a plain store (a
// compressing store to memory is slow on some cores). The store is unconditional: a branch
// on "any value inside" is taken by about a third of the vectors at random and its
// mispredictions cost more than the stores. buf + cnt stays within the cap + 16 floats.
__attribute__((target("avx512f"))) bool x86::bracket_pass_avx512(
    const float* x, std::size_t n, float lo, float hi, float* buf, std::size_t cap,
    std::size_t* below_out, std::size_t* cnt_out) {
  const __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
  std::size_t below = 0, cnt = 0, j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_loadu_ps(x + j);
    const __mmask16 lt = _mm512_cmp_ps_mask(v, vlo, _CMP_LT_OQ);
    const __mmask16 in = _mm512_cmp_ps_mask(v, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, vhi, _CMP_LE_OQ);
    below += (std::size_t)__builtin_popcount((unsigned)lt);
    _mm512_storeu_ps(buf + cnt, _mm512_maskz_compress_ps(in, v));  // cnt <= cap here
    cnt += (std::size_t)__builtin_popcount((unsigned)in);
    if (cnt > cap) return false;
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

}  // namespace cpu
}  // namespace dctqa
#endif
