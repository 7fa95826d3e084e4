// The 2-D DCT-II of one frame plane for the fused CPU op (spectral_qk_frames).
#pragma once
#include <cstdint>

namespace dctqa {
namespace cpu {

// plane[u * W + v] = factor * sum_{y, x} src[y*sy + x*sx] cos(pi (2y+1) u / 2H) cos(pi (2x+1) v / 2W)
// (the unnormalised DCT-II of METRIC.md) for u < H, v < W; src strides in elements.
// Runs pocketfft's 1-D DCT-II on several lines at once in the widest vectors the CPU has
// (AVX2 + FMA, else the baseline's SSE2 on x86-64). Thread-safe (per-thread buffers).
void dct2_plane(const std::uint8_t* src, std::int64_t sy, std::int64_t sx, std::int64_t H,
                std::int64_t W, float factor, float* plane);
void dct2_plane(const float* src, std::int64_t sy, std::int64_t sx, std::int64_t H, std::int64_t W,
                float factor, float* plane);

}  // namespace cpu
}  // namespace dctqa
