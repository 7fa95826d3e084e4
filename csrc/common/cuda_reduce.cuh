// Device helpers shared by the CUDA kernels of every op: order-preserving float keys,
// an exact radix selection of one rank per plane (4 passes of 8 bits, stream-ordered,
// no host synchronisation), block sums, and the final mean of per-block partial sums.
// Free of torch headers; included by csrc/*/cuda/*.cu only.
#pragma once
#include <cuda_runtime.h>
#include <stdint.h>

#include "common/constants.h"
#include "common/cuda_util.cuh"

namespace dctqa {
namespace cuda {

constexpr int kThreads = 256;  // block size of the selection and reduction kernels
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  return __uint_as_float(b);
}

// state[2p] = key prefix found so far, state[2p+1] = rank still to skip inside it.
static __global__ void select_init_kernel(uint32_t* state, int64_t planes, uint32_t rank) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p < planes) {
    state[2 * p] = 0u;
    state[2 * p + 1] = rank;
  }
}

// Histogram of key bits [shift, shift+8) of the elements whose higher bits equal the
// prefix. Grid: x = plane, y = slice of the plane. hist: planes x 256, zeroed before.
static __global__ void select_hist_kernel(const float* __restrict__ data, int64_t M,
                                          const uint32_t* __restrict__ state,
                                          uint32_t* __restrict__ hist, int shift) {
  __shared__ uint32_t sh[256];
  const int64_t p = blockIdx.x;
  for (int b = threadIdx.x; b < 256; b += blockDim.x) sh[b] = 0u;
  __syncthreads();
  const uint32_t prefix = state[2 * p];
  const uint32_t high_mask = (shift == 24) ? 0u : (0xffffffffu << (shift + 8));
  const float* x = data + p * M;
  const int64_t stride = (int64_t)gridDim.y * blockDim.x;
  for (int64_t j = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; j < M; j += stride) {
    const uint32_t k = order_key(x[j]);
    if (((k ^ prefix) & high_mask) == 0u) atomicAdd(&sh[(k >> shift) & 255u], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < 256; b += blockDim.x)
    if (sh[b]) atomicAdd(&hist[p * 256 + b], sh[b]);
}

// One thread per plane: finds the bin holding the remaining rank, extends the prefix.
static __global__ void select_pick_kernel(uint32_t* __restrict__ state,
                                          const uint32_t* __restrict__ hist, int64_t planes,
                                          int shift) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p >= planes) return;
  uint32_t r = state[2 * p + 1];
  const uint32_t* h = hist + p * 256;
  uint32_t b = 0;
  for (; b < 255u; ++b) {
    if (r < h[b]) break;
    r -= h[b];
  }
  state[2 * p] |= (b << shift);
  state[2 * p + 1] = r;
}

// eps[p] = epsilon * value(prefix) + kAbsFloor (METRIC.md's eps_k from the lower median).
static __global__ void select_eps_kernel(const uint32_t* __restrict__ state, int64_t planes,
                                         double epsilon, float* __restrict__ eps) {
  const int64_t p = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (p < planes) eps[p] = (float)(epsilon * (double)key_value(state[2 * p]) + kAbsFloor);
}

// Bytes of workspace select_eps needs for `planes` planes.
inline size_t select_workspace_bytes(int64_t planes) {
  return (size_t)planes * (256 + 2) * sizeof(uint32_t);
}

// eps for every plane of `data` (planes x M floats, contiguous): epsilon * (value of
// rank floor((M-1)/2)) + kAbsFloor. `ws` holds select_workspace_bytes(planes) bytes.
inline cudaError_t launch_lower_median_eps(const float* data, int64_t planes, int64_t M,
                                           double epsilon, void* ws, float* eps,
                                           cudaStream_t stream) {
  uint32_t* hist = static_cast<uint32_t*>(ws);
  uint32_t* state = hist + planes * 256;
  const unsigned pb = (unsigned)((planes + kThreads - 1) / kThreads);
  select_init_kernel<<<pb, kThreads, 0, stream>>>(state, planes, (uint32_t)((M - 1) / 2));
  int64_t slices = (M + (int64_t)kThreads * 16 - 1) / ((int64_t)kThreads * 16);
  if (slices > 64) slices = 64;
  if (slices < 1) slices = 1;
  for (int shift = 24; shift >= 0; shift -= 8) {
    cudaError_t e = cudaMemsetAsync(hist, 0, (size_t)planes * 256 * sizeof(uint32_t), stream);
    if (e != cudaSuccess) return e;
    select_hist_kernel<<<dim3((unsigned)planes, (unsigned)slices), kThreads, 0, stream>>>(
        data, M, state, hist, shift);
    select_pick_kernel<<<pb, kThreads, 0, stream>>>(state, hist, planes, shift);
  }
  select_eps_kernel<<<pb, kThreads, 0, stream>>>(state, planes, epsilon, eps);
  return cudaGetLastError();
}

// Sum over the block of one float per thread; the result is valid in thread 0.
// Every thread of the block must call it (it synchronises the block).
__device__ __forceinline__ double block_sum(float v, double* smem /* >= 32 doubles */) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) smem[warp] = (double)v;
  __syncthreads();
  double s = 0.0;
  if (threadIdx.x == 0) {
    const int nw = (blockDim.x + 31) >> 5;
    for (int w = 0; w < nw; ++w) s += smem[w];
  }
  __syncthreads();
  return s;
}

// out[n*K + k0 + kk] = 1 + sum of partials[p][0..nparts) * inv_count, with p = n*kc + kk:
// the partials are sums of r - 1 = (A^o - A^c) / (A^c + eps), so identical frames give
// exactly 1 (every term 0) whatever the rounding of the divisions or of inv_count.
// Grid: one block per plane, deterministic order.
static __global__ void final_mean_kernel(const double* __restrict__ partials, int64_t nparts,
                                         int64_t kc, int64_t K, int64_t k0, double inv_count,
                                         double* __restrict__ out) {
  __shared__ double sm[kThreads];
  const int64_t p = blockIdx.x;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < nparts; j += blockDim.x) s += partials[p * nparts + j];
  sm[threadIdx.x] = s;
  __syncthreads();
  for (int o = blockDim.x / 2; o > 0; o >>= 1) {
    if ((int)threadIdx.x < o) sm[threadIdx.x] += sm[threadIdx.x + o];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const int64_t n = p / kc, kk = p % kc;
    out[n * K + k0 + kk] = 1.0 + sm[0] * inv_count;
  }
}

}  // namespace cuda
}  // namespace dctqa
