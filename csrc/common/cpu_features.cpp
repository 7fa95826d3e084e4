// CPU detection and the table of x86 paths (cpu_features.h).
#include "common/cpu_features.h"

#include <algorithm>
#include <atomic>

namespace dctqa {
namespace cpu {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#ifdef DCTQA_HAVE_AVX512_PATH
  __builtin_cpu_init();  // this library may be loaded before libgcc's init ran for it
  f.avx512f = __builtin_cpu_supports("avx512f") != 0;
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return f;
}

CpuKernels make_table(int level) {
  const CpuFeatures& has = cpu_features();
  CpuKernels t{};
  t.level = level;
  t.avx512 = level >= 2 && has.avx512f;
  t.avx2_fma = level >= 1 && has.avx2_fma;
  t.bracket_pass = portable::bracket_pass;
  t.ratio_moments = portable::ratio_moments;
  t.squared_moments_bracket = portable::squared_moments_bracket;
  t.four_sqrt = portable::four_sqrt;
  t.fused_pair_rows = portable::fused_pair_rows;
  t.dct2_plane_u8 = portable::dct2_plane_u8;
  t.dct2_plane_f32 = portable::dct2_plane_f32;
#ifdef DCTQA_HAVE_AVX512_PATH
  if (t.avx2_fma) {
    t.bracket_pass = x86::bracket_pass_avx2;
    t.ratio_moments = x86::ratio_moments_avx2;
    t.four_sqrt = x86::four_sqrt_avx2;
    t.fused_pair_rows = x86::fused_pair_rows_v3;
    t.dct2_plane_u8 = x86::dct2_plane_u8_avx2;
    t.dct2_plane_f32 = x86::dct2_plane_f32_avx2;
  }
  if (t.avx512) {  // the DCT lines stay AVX2 (8 per vector) on AVX-512 CPUs
    t.bracket_pass = x86::bracket_pass_avx512;
    t.ratio_moments = x86::ratio_moments_avx512;
    t.squared_moments_bracket = x86::squared_moments_bracket_avx512;
    t.four_sqrt = x86::four_sqrt_avx512;
    t.fused_pair_rows = x86::fused_pair_rows_v4;
  }
#endif
  return t;
}

// One table per level, built once; the pointer in force moves between them.
const CpuKernels* table_for(int level) {
  static const CpuKernels tables[3] = {make_table(0), make_table(1), make_table(2)};
  return &tables[std::min(2, std::max(0, level))];
}

std::atomic<const CpuKernels*>& current() {
  static std::atomic<const CpuKernels*> t{table_for(2)};
  return t;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

const CpuKernels& cpu_kernels() { return *current().load(std::memory_order_acquire); }

void select_cpu_kernels(int level) { current().store(table_for(level), std::memory_order_release); }

}  // namespace cpu
}  // namespace dctqa
