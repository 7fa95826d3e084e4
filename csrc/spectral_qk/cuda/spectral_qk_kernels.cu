// CUDA kernels of dctqa::spectral_qk.
//
// Pipeline for one call, all on one stream, no host synchronisation:
//  1. Hv[k][c][i][v] = sum_j h[k,c,i,j] exp(-i pi v j / W)      (tiny, float64 math)
//     P[u][i]        = exp(-i pi u i / H)
//  2. for each chunk of frames x filters:
//     a. magnitude kernel: one thread per (k, u, v) builds G[k, :, u, v] from Hv and P
//        (C*kh complex multiply-adds, amortised over all frames of the chunk) and writes
//        A^o[n, k, u, v] = 4 |sum_c C^o_c conj(G_c)| for every frame n;
//     b. exact lower median of every A^o plane by radix selection (4 x 8-bit passes);
//     c. ratio kernel: rebuilds G, computes A^c on the fly, reads A^o, sums
//        r - 1 = (A^o - A^c)/(A^c + eps) into per-block partials (double);
//     d. final kernel: 1 + fixed-order sum of the partials / (H W) -> out[n, k].
// A^o (magnitude kernel) and A^c (ratio kernel) come from the same device functions with
// explicitly rounded operations (no contraction left to the compiler), so identical frames
// give bitwise identical magnitudes, every r - 1 is 0 and Q_k = 1 exactly.
// Only A^o of one chunk is stored (frames_per_pass x filters_per_pass x H x W floats,
// bounded by a byte budget), never K x H x W for the whole batch.
#include "spectral_qk/cuda/spectral_qk_cuda.h"
#include "common/cuda_reduce.cuh"

namespace dctqa {
namespace cuda {
namespace {

constexpr int kRowThreads = 128;  // threads along v in the magnitude / ratio kernels

// angle = pi * m / d with m reduced mod 2d in integers; e = exp(-i angle).
__global__ void row_phase_kernel(int64_t H, int64_t kh, float2* __restrict__ ph) {
  const int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (t >= H * kh) return;
  const int64_t u = t / kh, i = t % kh;
  const double m = (double)((u * i) % (2 * H));
  double s, c;
  sincospi(m / (double)H, &s, &c);
  ph[t] = make_float2((float)c, (float)-s);
}

__global__ void filter_rows_dft_kernel(const float* __restrict__ h, int64_t rows, int64_t kw,
                                       int64_t W, float2* __restrict__ hv) {
  const int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (t >= rows * W) return;
  const int64_t row = t / W, v = t % W;  // row = (k*C + c)*kh + i
  double sr = 0.0, si = 0.0;
  for (int64_t j = 0; j < kw; ++j) {
    const double m = (double)((v * j) % (2 * W));
    double s, c;
    sincospi(m / (double)W, &s, &c);
    const double x = (double)h[row * kw + j];
    sr += x * c;
    si -= x * s;
  }
  hv[t] = make_float2((float)sr, (float)si);
}

// G[k, c, u, v] for c < C into g (registers).
__device__ __forceinline__ void filter_spectrum(const float2* __restrict__ hv,
                                                const float2* __restrict__ ph, int64_t C,
                                                int64_t kh, int64_t W, int64_t k, int64_t u,
                                                int64_t v, float2* g) {
#pragma unroll
  for (int c = 0; c < kMaxChannels; ++c) {
    float gr = 0.f, gi = 0.f;
    if (c < C) {
      const float2* hrow = hv + ((k * C + c) * kh) * W + v;
      const float2* prow = ph + u * kh;
      for (int64_t i = 0; i < kh; ++i) {
        const float2 p = __ldg(prow + i);
        const float2 b = __ldg(hrow + i * W);
        gr = __fmaf_rn(p.x, b.x, __fmaf_rn(-p.y, b.y, gr));
        gi = __fmaf_rn(p.x, b.y, __fmaf_rn(p.y, b.x, gi));
      }
    }
    g[c] = make_float2(gr, gi);
  }
}

__device__ __forceinline__ float magnitude(const float* __restrict__ x, int64_t cstride,
                                           int64_t C, const float2* g) {
  float sr = 0.f, si = 0.f;
#pragma unroll
  for (int c = 0; c < kMaxChannels; ++c) {
    if (c < C) {
      const float xc = __ldg(x + c * cstride);
      sr = __fmaf_rn(xc, g[c].x, sr);
      si = __fmaf_rn(xc, g[c].y, si);
    }
  }
  return __fmul_rn(4.f, __fsqrt_rn(__fmaf_rn(sr, sr, __fmul_rn(si, si))));
}

// Grid: x = v tiles, y = row u, z = filter kk of the chunk. Frames n0..n0+nb.
__global__ void magnitude_kernel(const float* __restrict__ co, int64_t C, int64_t H, int64_t W,
                                 const float2* __restrict__ hv, const float2* __restrict__ ph,
                                 int64_t kh, int64_t k0, int64_t kc, int64_t n0, int64_t nb,
                                 float* __restrict__ ao) {
  const int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t u = blockIdx.y, kk = blockIdx.z;
  if (v >= W) return;
  float2 g[kMaxChannels];
  filter_spectrum(hv, ph, C, kh, W, k0 + kk, u, v, g);
  const int64_t HW = H * W;
  for (int64_t t = 0; t < nb; ++t) {
    const float* x = co + ((n0 + t) * C) * HW + u * W + v;
    ao[(t * kc + kk) * HW + u * W + v] = magnitude(x, HW, C, g);
  }
}

// Same grid; partials[(t*kc + kk) * nparts + part], part = y * gridDim.x + x.
__global__ void ratio_kernel(const float* __restrict__ cc, int64_t C, int64_t H, int64_t W,
                             const float2* __restrict__ hv, const float2* __restrict__ ph,
                             int64_t kh, int64_t k0, int64_t kc, int64_t n0, int64_t nb,
                             const float* __restrict__ ao, const float* __restrict__ eps,
                             double* __restrict__ partials) {
  __shared__ double smem[32];
  const int64_t v = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t u = blockIdx.y, kk = blockIdx.z;
  const bool valid = v < W;
  float2 g[kMaxChannels];
  if (valid) filter_spectrum(hv, ph, C, kh, W, k0 + kk, u, v, g);
  const int64_t HW = H * W;
  const int64_t nparts = (int64_t)gridDim.x * gridDim.y;
  const int64_t part = (int64_t)blockIdx.y * gridDim.x + blockIdx.x;
  for (int64_t t = 0; t < nb; ++t) {
    const int64_t plane = t * kc + kk;
    float term = 0.f;
    if (valid) {
      const float e = eps[plane];
      const float a = ao[plane * HW + u * W + v];
      const float c = magnitude(cc + ((n0 + t) * C) * HW + u * W + v, HW, C, g);
      term = (a - c) / (c + e);  // r - 1: exactly 0 where a == c
    }
    const double s = block_sum(term, smem);  // every thread of the block takes part
    if (threadIdx.x == 0) partials[plane * nparts + part] = s;
  }
}

}  // namespace

SpectralPlan spectral_plan(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t kh,
                           int64_t kw, int64_t budget_bytes) {
  SpectralPlan p{N, C, H, W, K, kh, kw, 1, 1};
  const int64_t plane = H * W * (int64_t)sizeof(float);
  int64_t nb = budget_bytes / plane;
  nb = nb < 1 ? 1 : (nb > N ? N : nb);
  int64_t kc = budget_bytes / (plane * nb);
  kc = kc < 1 ? 1 : (kc > K ? K : kc);
  if (kc > 65535) kc = 65535;  // grid.z limit
  p.frames_per_pass = nb < 1 ? 1 : nb;
  p.filters_per_pass = kc;
  return p;
}

namespace {
struct Layout {
  size_t hv, ph, ao, sel, eps, partials, total;
  int64_t nparts;
};
Layout layout(const SpectralPlan& p) {
  Layout l{};
  const int64_t planes = p.frames_per_pass * p.filters_per_pass;
  l.nparts = ((p.W + kRowThreads - 1) / kRowThreads) * p.H;
  size_t off = 0;
  l.hv = off;
  off += align_up((size_t)p.K * p.C * p.kh * p.W * sizeof(float2));
  l.ph = off;
  off += align_up((size_t)p.H * p.kh * sizeof(float2));
  l.ao = off;
  off += align_up((size_t)planes * p.H * p.W * sizeof(float));
  l.sel = off;
  off += align_up(select_workspace_bytes(planes));
  l.eps = off;
  off += align_up((size_t)planes * sizeof(float));
  l.partials = off;
  off += align_up((size_t)planes * l.nparts * sizeof(double));
  l.total = off;
  return l;
}
}  // namespace

size_t spectral_workspace_bytes(const SpectralPlan& plan) { return layout(plan).total; }

cudaError_t spectral_qk_launch(const SpectralPlan& p, const float* co, const float* cc,
                               const float* filters, double epsilon, double* out,
                               void* workspace, cudaStream_t stream) {
  if (p.N == 0 || p.K == 0) return cudaSuccess;
  if (p.C > kMaxChannels || p.H > 65535) return cudaErrorInvalidValue;
  const Layout l = layout(p);
  char* ws = static_cast<char*>(workspace);
  float2* hv = reinterpret_cast<float2*>(ws + l.hv);
  float2* ph = reinterpret_cast<float2*>(ws + l.ph);
  float* ao = reinterpret_cast<float*>(ws + l.ao);
  void* sel = ws + l.sel;
  float* eps = reinterpret_cast<float*>(ws + l.eps);
  double* partials = reinterpret_cast<double*>(ws + l.partials);

  const int64_t rows = p.K * p.C * p.kh;
  // C = 0 (no channels) is valid: every magnitude is 0 and Q_k = 1, as on the CPU. A
  // launch with an empty grid is an error in CUDA, so the empty filter DFT is skipped.
  if (rows > 0)
    filter_rows_dft_kernel<<<(unsigned)((rows * p.W + 255) / 256), 256, 0, stream>>>(
        filters, rows, p.kw, p.W, hv);
  row_phase_kernel<<<(unsigned)((p.H * p.kh + 255) / 256), 256, 0, stream>>>(p.H, p.kh, ph);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;

  const int64_t HW = p.H * p.W;
  const unsigned vt = (unsigned)((p.W + kRowThreads - 1) / kRowThreads);
  for (int64_t n0 = 0; n0 < p.N; n0 += p.frames_per_pass) {
    const int64_t nb = (p.N - n0) < p.frames_per_pass ? (p.N - n0) : p.frames_per_pass;
    for (int64_t k0 = 0; k0 < p.K; k0 += p.filters_per_pass) {
      const int64_t kc = (p.K - k0) < p.filters_per_pass ? (p.K - k0) : p.filters_per_pass;
      const dim3 grid(vt, (unsigned)p.H, (unsigned)kc);
      magnitude_kernel<<<grid, kRowThreads, 0, stream>>>(co, p.C, p.H, p.W, hv, ph, p.kh, k0,
                                                         kc, n0, nb, ao);
      // Planes are t*kc + kk for t < nb, kk < kc: contiguous, nb*kc of them.
      e = launch_lower_median_eps(ao, nb * kc, HW, epsilon, sel, eps, stream);
      if (e != cudaSuccess) return e;
      ratio_kernel<<<grid, kRowThreads, 0, stream>>>(cc, p.C, p.H, p.W, hv, ph, p.kh, k0, kc,
                                                     n0, nb, ao, eps, partials);
      // out[(n0 + t) * K + k0 + kk]: shift the output pointer by n0 rows.
      final_mean_kernel<<<(unsigned)(nb * kc), kThreads, 0, stream>>>(
          partials, l.nparts, kc, p.K, k0, 1.0 / (double)HW, out + n0 * p.K);
      e = cudaGetLastError();
      if (e != cudaSuccess) return e;
    }
  }
  return cudaSuccess;
}

}  // namespace cuda
}  // namespace dctqa
