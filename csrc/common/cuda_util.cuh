// Small host-side helpers every op's CUDA launcher shares. Free of torch headers.
#pragma once
#include <stddef.h>

namespace dctqa {
namespace cuda {

// x rounded up to a multiple of 256 bytes (the alignment of each workspace part).
inline size_t align_up(size_t x) { return (x + 255) / 256 * 256; }

}  // namespace cuda
}  // namespace dctqa
