// dct2_plane (dct2_plane.h): pocketfft's 1-D DCT-II, built twice on x86-64: here for the
// baseline (SSE2 on x86-64, 4 lines per vector), in dct2_plane_x86.cpp for AVX2 + FMA (8
// lines); the table of common/cpu_features.h holds the one in force.
//
// Each build includes pocketfft's header inside a namespace of its own (dct_base,
// dct_avx2) and hidden, so the two compilations of its templates are different symbols and
// the AVX2 code can never stand in for the baseline's.
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

#include "common/cpu_features.h"
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

#pragma GCC visibility pop

namespace dctqa {
namespace cpu {

void portable::dct2_plane_u8(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                             std::int64_t W, float factor, float* plane) {
  dct_base::dct2_plane_impl(src, sy, sx, H, W, factor, plane);
}
void portable::dct2_plane_f32(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                              std::int64_t W, float factor, float* plane) {
  dct_base::dct2_plane_impl(src, sy, sx, H, W, factor, plane);
}

void dct2_plane(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                float factor, float* plane) {
  cpu_kernels().dct2_plane_u8(src, sy, sx, H, W, factor, plane);
}
void dct2_plane(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                float factor, float* plane) {
  cpu_kernels().dct2_plane_f32(src, sy, sx, H, W, factor, plane);
}

}  // namespace cpu
}  // namespace dctqa
