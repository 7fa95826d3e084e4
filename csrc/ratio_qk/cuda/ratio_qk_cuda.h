// Launcher of the CUDA kernels of dctqa::ratio_qk (no torch types: see ratio_qk_kernels.cu).
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

namespace dctqa {
namespace cuda {

// Bytes of device workspace ratio_qk_launch needs.
size_t ratio_qk_workspace_bytes(int64_t planes, int64_t M);

// ao, ac: planes x M floats (planes = N*K), out: planes doubles; all on the device.
// Enqueues everything on `stream`; never synchronises with the host.
cudaError_t ratio_qk_launch(const float* ao, const float* ac, int64_t planes, int64_t M,
                            double epsilon, double* out, void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace dctqa
