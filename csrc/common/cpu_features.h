// CPU detection and the table of the CPU kernels' x86 paths (the only place that asks the
// CPU what it has). As libvmaf does, every hand-written x86 path (intrinsics and the
// per-width builds) is reached through one table of function pointers, filled once when the
// extension loads and again only when dctqa.ops.tuning changes the intrinsics level
// (select_cpu_kernels); a kernel call reads the table and never checks the CPU.
// The x86 paths themselves live in the *_x86.cpp files; the portable ones beside them.
// (Plain loops of portable code may still be cloned per ISA by the compiler,
// common/cpu_clones.h; that is code generation, not a choice among hand-written paths.)
#pragma once
#include <cstddef>
#include <cstdint>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(_M_X64))
// The hand-written x86 paths (AVX2 + FMA, AVX-512F) are compiled in (defined here only).
#define DCTQA_HAVE_AVX512_PATH 1
#endif

namespace dctqa {
namespace cpu {

struct Bracket;  // spectral_qk/cpu/spectral_rows.h

// What the CPU has (detected once, at first use).
struct CpuFeatures {
  bool avx512f = false;
  bool avx2_fma = false;  // AVX2 and FMA
};
const CpuFeatures& cpu_features();

typedef bool (*BracketPassFn)(const float* x, std::size_t n, float lo, float hi, float* buf,
                              std::size_t cap, std::size_t* below, std::size_t* cnt);
typedef void (*RatioMomentsFn)(const float* x, const float* y, std::size_t n, float e, float* lanes);
typedef void (*SquaredMomentsFn)(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b);
typedef void (*FourSqrtFn)(float* o, int n);
typedef void (*FusedRowsFn)(const float* hre, const float* him, const float* pre, const float* pim, int kh,
                            int W, int Wp, const float* xo_u, const float* xc_u, const float* xo_m,
                            const float* xc_m, std::ptrdiff_t cstride, bool pair, float* const* dst);
typedef void (*Dct2U8Fn)(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                         std::int64_t W, float factor, float* plane);
typedef void (*Dct2F32Fn)(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                          std::int64_t W, float factor, float* plane);

// The paths in force. level: the requested ceiling (0 none, 1 AVX2 + FMA at most, 2 all);
// avx512 / avx2_fma: which of them the table holds (the ceiling and the CPU allowing).
struct CpuKernels {
  int level;
  bool avx512, avx2_fma;
  BracketPassFn bracket_pass;               // common/cpu_reduce{,_x86}.cpp
  RatioMomentsFn ratio_moments;             // spectral_qk/cpu/spectral_rows{,_x86}.cpp
  SquaredMomentsFn squared_moments_bracket;  // idem
  FourSqrtFn four_sqrt;                     // idem
  FusedRowsFn fused_pair_rows;              // idem (tile width 16, 8 or 4)
  Dct2U8Fn dct2_plane_u8;                   // spectral_qk/cpu/dct2_plane{,_x86}.cpp
  Dct2F32Fn dct2_plane_f32;                 // idem
};

// The table in force (a table for the default level 2 until select_cpu_kernels runs).
const CpuKernels& cpu_kernels();

// Fills the table for `level` (clamped to 0..2) and this CPU; thread-safe (kernels already
// running finish with the table they started with).
void select_cpu_kernels(int level);

// The paths the table is filled from: portable ones (always) and x86 ones (when
// DCTQA_HAVE_AVX512_PATH), each defined in the file named in CpuKernels.
namespace portable {
bool bracket_pass(const float* x, std::size_t n, float lo, float hi, float* buf, std::size_t cap,
                  std::size_t* below, std::size_t* cnt);
void ratio_moments(const float* x, const float* y, std::size_t n, float e, float* lanes);
void squared_moments_bracket(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b);
void four_sqrt(float* o, int n);
void fused_pair_rows(const float* hre, const float* him, const float* pre, const float* pim, int kh, int W,
                     int Wp, const float* xo_u, const float* xc_u, const float* xo_m, const float* xc_m,
                     std::ptrdiff_t cstride, bool pair, float* const* dst);
void dct2_plane_u8(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                   float factor, float* plane);
void dct2_plane_f32(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                    float factor, float* plane);
}  // namespace portable

#ifdef DCTQA_HAVE_AVX512_PATH
namespace x86 {
bool bracket_pass_avx2(const float* x, std::size_t n, float lo, float hi, float* buf, std::size_t cap,
                       std::size_t* below, std::size_t* cnt);
bool bracket_pass_avx512(const float* x, std::size_t n, float lo, float hi, float* buf, std::size_t cap,
                         std::size_t* below, std::size_t* cnt);
void ratio_moments_avx2(const float* x, const float* y, std::size_t n, float e, float* lanes);
void ratio_moments_avx512(const float* x, const float* y, std::size_t n, float e, float* lanes);
void squared_moments_bracket_avx512(float* so, float* sc, std::size_t n, float e, float* lanes, Bracket* b);
void four_sqrt_avx2(float* o, int n);
void four_sqrt_avx512(float* o, int n);
void fused_pair_rows_v3(const float* hre, const float* him, const float* pre, const float* pim, int kh, int W,
                        int Wp, const float* xo_u, const float* xc_u, const float* xo_m, const float* xc_m,
                        std::ptrdiff_t cstride, bool pair, float* const* dst);
void fused_pair_rows_v4(const float* hre, const float* him, const float* pre, const float* pim, int kh, int W,
                        int Wp, const float* xo_u, const float* xc_u, const float* xo_m, const float* xc_m,
                        std::ptrdiff_t cstride, bool pair, float* const* dst);
void dct2_plane_u8_avx2(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                        std::int64_t W, float factor, float* plane);
void dct2_plane_f32_avx2(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                         float factor, float* plane);
}  // namespace x86
#endif

}  // namespace cpu
}  // namespace dctqa
