// The AVX2 + FMA build of dct2_plane (dct2_plane.h): pocketfft's 1-D DCT-II on 8 lines per
// vector, compiled as a `#pragma GCC target` region inside a namespace of its own
// (dct_avx2; the baseline build is dct2_plane.cpp's dct_base). The standard headers are
// included first, so their templates keep the baseline target. Reached only through the
// table of common/cpu_features.h, filled where the CPU reports AVX2 and FMA.
#include "common/cpu_features.h"

#if defined(DCTQA_HAVE_AVX512_PATH) && !defined(__clang__)
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
#include <immintrin.h>

#include "spectral_qk/cpu/dct2_plane.h"
#include "spectral_qk/cpu/spectral_rows.h"

#define POCKETFFT_CACHE_SIZE 16
#pragma GCC visibility push(hidden)
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

#pragma GCC visibility pop

namespace dctqa {
namespace cpu {

void x86::dct2_plane_u8_avx2(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                             std::int64_t W, float factor, float* plane) {
  dct_avx2::dct2_plane_impl(src, sy, sx, H, W, factor, plane);
}
void x86::dct2_plane_f32_avx2(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                              std::int64_t W, float factor, float* plane) {
  dct_avx2::dct2_plane_impl(src, sy, sx, H, W, factor, plane);
}

}  // namespace cpu
}  // namespace dctqa
#elif defined(DCTQA_HAVE_AVX512_PATH)
// clang: pocketfft is not built in a target region; the table's AVX2 entry is the baseline.
namespace dctqa {
namespace cpu {
void x86::dct2_plane_u8_avx2(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                             std::int64_t W, float factor, float* plane) {
  portable::dct2_plane_u8(src, sy, sx, H, W, factor, plane);
}
void x86::dct2_plane_f32_avx2(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                              std::int64_t W, float factor, float* plane) {
  portable::dct2_plane_f32(src, sy, sx, H, W, factor, plane);
}
}  // namespace cpu
}  // namespace dctqa
#endif
