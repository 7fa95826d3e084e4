// CUDA entry point of dctqa::spectral_qk: checks, output and workspace from the caching
// allocator, launch on the current stream (no host synchronisation).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/control.h"

#include <cstdlib>

#include "spectral_qk/spectral_qk_checks.h"
#include "spectral_qk/cuda/spectral_qk_cuda.h"

namespace dctqa {
namespace {

// Byte budget of the stored reference magnitudes (DCTQA_CUDA_WORKSPACE_MB, common/control.h).
int64_t magnitude_budget_bytes() { return kernel_config().cuda_workspace_bytes; }

at::Tensor spectral_qk_cuda(const at::Tensor& co_in, const at::Tensor& cc_in,
                            const at::Tensor& filters_in, double epsilon) {
  check_spectral_args(co_in, cc_in, filters_in);
  TORCH_CHECK(co_in.is_cuda() && filters_in.device() == co_in.device(),
              "dctqa: spectral_qk CUDA kernel needs co, cc and filters on one CUDA device");
  // Message parts are plain int64 values (no reference to a header constant). dctqa.ops
  // sends such inputs to the torch path, so these checks only fire on direct op calls.
  const int64_t max_channels = cuda::kMaxChannels, channels = co_in.size(1);
  TORCH_CHECK(channels <= max_channels, "dctqa: spectral_qk CUDA kernel supports at most ",
              max_channels, " channels, got ", channels);
  TORCH_CHECK(co_in.size(2) <= 65535, "dctqa: spectral_qk CUDA kernel supports H <= 65535");
  const c10::cuda::CUDAGuard guard(co_in.device());
  const at::Tensor co = co_in.contiguous();
  const at::Tensor cc = cc_in.contiguous();
  const at::Tensor filt = filters_in.contiguous();
  const int64_t N = co.size(0), K = filt.size(0);
  at::Tensor out = at::empty({N, K}, co.options().dtype(at::kDouble));
  if (N == 0 || K == 0) return out;
  const cuda::SpectralPlan plan =
      cuda::spectral_plan(N, co.size(1), co.size(2), co.size(3), K, filt.size(2), filt.size(3),
                          magnitude_budget_bytes());
  at::Tensor ws = at::empty({(int64_t)cuda::spectral_workspace_bytes(plan)},
                            co.options().dtype(at::kByte));
  const cudaError_t err = cuda::spectral_qk_launch(
      plan, co.data_ptr<float>(), cc.data_ptr<float>(), filt.data_ptr<float>(), epsilon,
      out.data_ptr<double>(), ws.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "dctqa: spectral_qk CUDA launch failed: ",
              cudaGetErrorString(err));
  return out;
}

}  // namespace

DCTQA_KERNEL(CUDA, "spectral_qk", &spectral_qk_cuda)

}  // namespace dctqa
