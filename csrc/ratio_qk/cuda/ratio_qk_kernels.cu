// CUDA kernels of dctqa::ratio_qk: exact radix selection of the lower median of every
// (frame, filter) plane of ao, then the ratio mean (as 1 + the mean of r - 1) with
// per-block partial sums reduced in a fixed order (deterministic), all on one stream.
#include "ratio_qk/cuda/ratio_qk_cuda.h"
#include "common/cuda_reduce.cuh"

namespace dctqa {
namespace cuda {
namespace {

constexpr int64_t kSlices = 32;  // blocks per plane in the ratio pass (at most)

__global__ void ratio_partial_kernel(const float* __restrict__ ao, const float* __restrict__ ac,
                                     int64_t M, const float* __restrict__ eps,
                                     double* __restrict__ partials) {
  __shared__ double smem[32];
  const int64_t p = blockIdx.x;
  const float e = eps[p];
  const float* a = ao + p * M;
  const float* c = ac + p * M;
  float s = 0.f;
  const int64_t stride = (int64_t)gridDim.y * blockDim.x;
  for (int64_t j = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; j < M; j += stride)
    s += (a[j] - c[j]) / (c[j] + e);  // r - 1: exactly 0 where a == c (fast-math division too)
  const double t = block_sum(s, smem);
  if (threadIdx.x == 0) partials[p * gridDim.y + blockIdx.y] = t;
}

int64_t slices_for(int64_t M) {
  int64_t s = (M + (int64_t)kThreads * 64 - 1) / ((int64_t)kThreads * 64);
  return s < 1 ? 1 : (s > kSlices ? kSlices : s);
}

}  // namespace

size_t ratio_qk_workspace_bytes(int64_t planes, int64_t M) {
  return align_up(select_workspace_bytes(planes)) + align_up((size_t)planes * sizeof(float)) +
         align_up((size_t)planes * slices_for(M) * sizeof(double));
}

cudaError_t ratio_qk_launch(const float* ao, const float* ac, int64_t planes, int64_t M,
                            double epsilon, double* out, void* workspace, cudaStream_t stream) {
  if (planes == 0) return cudaSuccess;
  char* ws = static_cast<char*>(workspace);
  void* sel = ws;
  ws += align_up(select_workspace_bytes(planes));
  float* eps = reinterpret_cast<float*>(ws);
  ws += align_up((size_t)planes * sizeof(float));
  double* partials = reinterpret_cast<double*>(ws);
  cudaError_t e = launch_lower_median_eps(ao, planes, M, epsilon, sel, eps, stream);
  if (e != cudaSuccess) return e;
  const int64_t slices = slices_for(M);
  ratio_partial_kernel<<<dim3((unsigned)planes, (unsigned)slices), kThreads, 0, stream>>>(
      ao, ac, M, eps, partials);
  final_mean_kernel<<<(unsigned)planes, kThreads, 0, stream>>>(partials, slices, planes, planes,
                                                               0, 1.0 / (double)M, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace dctqa
