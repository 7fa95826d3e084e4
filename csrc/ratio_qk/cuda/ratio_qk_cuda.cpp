// CUDA entry point of dctqa::ratio_qk: checks, output and workspace from the caching
// allocator, launch on the current stream (no host synchronisation).
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/control.h"

#include "ratio_qk/ratio_qk_checks.h"
#include "ratio_qk/cuda/ratio_qk_cuda.h"

namespace dctqa {
namespace {

at::Tensor ratio_qk_cuda(const at::Tensor& ao_in, const at::Tensor& ac_in, double epsilon) {
  check_ratio_args(ao_in, ac_in);
  TORCH_CHECK(ao_in.is_cuda(), "dctqa: ratio_qk CUDA kernel got non-CUDA tensors");
  const c10::cuda::CUDAGuard guard(ao_in.device());
  const at::Tensor ao = ao_in.contiguous();
  const at::Tensor ac = ac_in.contiguous();
  const int64_t N = ao.size(0), K = ao.size(1), M = ao.size(2);
  TORCH_CHECK(N * K < (int64_t(1) << 31), "dctqa: ratio_qk supports at most 2^31 planes");
  at::Tensor out = at::empty({N, K}, ao.options().dtype(at::kDouble));
  if (N * K == 0) return out;
  at::Tensor ws = at::empty({(int64_t)cuda::ratio_qk_workspace_bytes(N * K, M)},
                            ao.options().dtype(at::kByte));
  const cudaError_t err = cuda::ratio_qk_launch(
      ao.data_ptr<float>(), ac.data_ptr<float>(), N * K, M, epsilon, out.data_ptr<double>(),
      ws.data_ptr(), c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "dctqa: ratio_qk CUDA launch failed: ", cudaGetErrorString(err));
  return out;
}

}  // namespace

DCTQA_KERNEL(CUDA, "ratio_qk", &ratio_qk_cuda)

}  // namespace dctqa
