// dct2_plane (dct2_plane.h): pocketfft's 1-D DCT-II, built twice on x86-64: for the
// baseline (SSE2, 4 lines per vector) and for AVX2 + FMA (8 lines), picked at run time.
//
// Each build includes pocketfft's header inside a namespace of its own (dct_base,
// dct_avx2), so the two compilations of its templates are different symbols and the AVX2
// code can never stand in for the baseline's. The standard headers are included first, so
// their templates keep the baseline target everywhere; the AVX2 build is a
// `#pragma GCC target` region, and its code runs only where the CPU reports AVX2 and FMA
// (and the hand-written paths allow it: set_intrinsics_level in common/cpu_reduce.h).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <complex>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <queue>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#include <immintrin.h>
#define DCTQA_DCT_X86 1
#endif

#include "common/cpu_reduce.h"
#include "spectral_qk/cpu/dct2_plane.h"
#include "spectral_qk/cpu/spectral_rows.h"

#define POCKETFFT_CACHE_SIZE 16
#pragma GCC visibility push(hidden)

namespace dctqa {
namespace cpu {
namespace dct_base {
#include "pocketfft/pocketfft_hdronly.h"
typedef float V __attribute__((vector_size(16)));
#if defined(DCTQA_DCT_X86)
#define DCTQA_DCT_TRANSPOSE4 1
#endif
#include "spectral_qk/cpu/dct2_lines.inc"
#undef DCTQA_DCT_TRANSPOSE4
}  // namespace dct_base
}  // namespace cpu
}  // namespace dctqa

#if defined(DCTQA_DCT_X86)
#undef POCKETFFT_HDRONLY_H
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace dctqa {
namespace cpu {
namespace dct_avx2 {
#include "pocketfft/pocketfft_hdronly.h"
typedef float V __attribute__((vector_size(32)));

// Transposes the 8 x 8 block r[0..7] (rows) in place.
inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}
#define DCTQA_DCT_TRANSPOSE8 1
#include "spectral_qk/cpu/dct2_lines.inc"
#undef DCTQA_DCT_TRANSPOSE8
}  // namespace dct_avx2
}  // namespace cpu
}  // namespace dctqa
#pragma GCC pop_options
#endif

#pragma GCC visibility pop

namespace dctqa {
namespace cpu {
namespace {
template <typename T>
void dispatch(const T* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W, float factor,
              float* plane) {
#if defined(DCTQA_DCT_X86)
  if (use_avx2_fma()) return dct_avx2::dct2_plane_impl(src, sy, sx, H, W, factor, plane);
#endif
  dct_base::dct2_plane_impl(src, sy, sx, H, W, factor, plane);
}
}  // namespace

void dct2_plane(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                float factor, float* plane) {
  dispatch(src, sy, sx, H, W, factor, plane);
}
void dct2_plane(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                float factor, float* plane) {
  dispatch(src, sy, sx, H, W, factor, plane);
}

}  // namespace cpu
}  // namespace dctqa
