// Launcher of the CUDA kernels of dctqa::sample_patches (no torch types).
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

namespace dctqa {
namespace cuda {

struct PatchGeometry {
  int64_t N, C, h, w, num, radius;
  uint64_t seed;
  const double* taps;  // radius + 1 taps, then w horizontal norms, then h vertical norms
  const int64_t* axes;  // corner_y[h], corner_x[w], valid_y[h], valid_x[w]
};

// Bytes of device workspace sample_patches_launch needs.
size_t sample_patches_workspace_bytes(int64_t N, int64_t h, int64_t w);

// act: N x C x h x w floats; prob: N x h x w floats; corners: N x num x 2 int64; all on the
// device. Enqueues everything on `stream`; never synchronises with the host.
cudaError_t sample_patches_launch(const float* act, const PatchGeometry& g, float* prob,
                                  int64_t* corners, void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace dctqa
