// Launcher of the CUDA kernels of dctqa::spectral_qk (no torch types: see
// spectral_qk_kernels.cu for the pipeline).
#pragma once
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

namespace dctqa {
namespace cuda {

constexpr int kMaxChannels = 4;  // filter spectra of one pixel are held in registers

struct SpectralPlan {
  int64_t N, C, H, W, K, kh, kw;
  int64_t frames_per_pass;   // frames whose magnitudes are held at once
  int64_t filters_per_pass;  // filters whose magnitudes are held at once
};

// Chooses the chunking so that the magnitude buffer stays under budget_bytes.
SpectralPlan spectral_plan(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t kh,
                           int64_t kw, int64_t budget_bytes);

// Bytes of device workspace spectral_qk_launch needs for `plan`.
size_t spectral_workspace_bytes(const SpectralPlan& plan);

// co, cc: N x C x H x W floats; filters: K x C x kh x kw floats; out: N x K doubles;
// all contiguous on the device. Enqueues everything on `stream`; no host sync.
cudaError_t spectral_qk_launch(const SpectralPlan& plan, const float* co, const float* cc,
                               const float* filters, double epsilon, double* out,
                               void* workspace, cudaStream_t stream);

}  // namespace cuda
}  // namespace dctqa
