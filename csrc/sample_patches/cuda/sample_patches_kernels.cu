// CUDA kernels of dctqa::sample_patches, one pass per step of the CPU kernel and in the
// same summation order wherever the CPU sums sequentially (row sums, totals, CDFs), so
// the draws match the CPU's: channel mean |act| -> horizontal taps -> vertical taps and
// mask -> row sums -> totals -> normalise -> row CDF -> draws.
#include "common/cuda_util.cuh"
#include "sample_patches/cuda/sample_patches_cuda.h"
#include "sample_patches/sample_patches.h"

namespace dctqa {
namespace cuda {
namespace {

constexpr int kBlock = 256;

unsigned blocks_for(int64_t n) { return (unsigned)((n + kBlock - 1) / kBlock); }

// Whether a patch centred on map cell (y, x) fits the frame (g.axes: valid_y, valid_x).
__device__ __forceinline__ bool valid_cell(const PatchGeometry& g, int64_t y, int64_t x) {
  const int64_t* vy = g.axes + g.h + g.w;
  return vy[y] && vy[g.h + x];
}

__global__ void hsmooth_kernel(const float* __restrict__ act, PatchGeometry g, double* __restrict__ hx) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t plane = g.h * g.w;
  if (i >= g.N * plane) return;
  const int64_t n = i / plane, y = (i % plane) / g.w, x = i % g.w;
  const int64_t r = g.radius;
  const int64_t k0 = x - r < 0 ? -x : -r, k1 = x + r >= g.w ? g.w - 1 - x : r;
  const float* a = act + n * g.C * plane + y * g.w;
  double acc = 0.0;
  for (int64_t k = k0; k <= k1; ++k) {
    double m = 0.0;
    for (int64_t c = 0; c < g.C; ++c) m = __dadd_rn(m, fabs((double)a[c * plane + x + k]));
    acc = __dadd_rn(acc, __dmul_rn(g.taps[k < 0 ? -k : k], m));
  }
  hx[i] = acc / ((double)g.C * g.taps[r + 1 + x]);
}

__global__ void vsmooth_kernel(const double* __restrict__ hx, PatchGeometry g, double* __restrict__ s) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t plane = g.h * g.w;
  if (i >= g.N * plane) return;
  const int64_t n = i / plane, y = (i % plane) / g.w, x = i % g.w;
  if (!valid_cell(g, y, x)) { s[i] = 0.0; return; }
  const int64_t r = g.radius;
  const int64_t k0 = y - r < 0 ? -y : -r, k1 = y + r >= g.h ? g.h - 1 - y : r;
  const double ny = g.taps[r + 1 + g.w + y];
  double acc = 0.0;
  for (int64_t k = k0; k <= k1; ++k)  // no FMA contraction: the CPU's rounding, step by step
    acc = __dadd_rn(acc, __dmul_rn(g.taps[k < 0 ? -k : k] / ny, hx[n * plane + (y + k) * g.w + x]));
  s[i] = acc;
}

// rows[n * h + y] = sequential sum of row y of frame n (double map, or float map if p != null).
__global__ void row_sum_kernel(const double* __restrict__ s, const float* __restrict__ p, PatchGeometry g,
                               double* __restrict__ rows) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= g.N * g.h) return;
  double r = 0.0;
  if (p) for (int64_t x = 0; x < g.w; ++x) r += (double)p[i * g.w + x];
  else for (int64_t x = 0; x < g.w; ++x) r += s[i * g.w + x];
  rows[i] = r;
}

// Per frame: total mass (or the valid-cell count, flagged, when the map has none), or the CDF.
__global__ void frame_scan_kernel(double* __restrict__ rows, PatchGeometry g, double* __restrict__ total,
                                  int* __restrict__ uniform, bool cumulative) {
  const int64_t n = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (n >= g.N) return;
  double run = 0.0;
  for (int64_t y = 0; y < g.h; ++y) {
    run += rows[n * g.h + y];
    if (cumulative) rows[n * g.h + y] = run;
  }
  if (cumulative) return;
  uniform[n] = !(run > 0.0);
  if (uniform[n]) {
    double cnt = 0.0;
    for (int64_t y = 0; y < g.h; ++y) {
      double rr = 0.0;
      for (int64_t x = 0; x < g.w; ++x) rr += valid_cell(g, y, x) ? 1.0 : 0.0;
      cnt += rr;
    }
    run = cnt;
  }
  total[n] = run;
}

__global__ void normalise_kernel(const double* __restrict__ s, PatchGeometry g, const double* __restrict__ total,
                                 const int* __restrict__ uniform, float* __restrict__ p) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t plane = g.h * g.w;
  if (i >= g.N * plane) return;
  const int64_t n = i / plane, y = (i % plane) / g.w, x = i % g.w;
  const double v = uniform[n] ? (valid_cell(g, y, x) ? 1.0 : 0.0) : s[i];
  p[i] = (float)(v / total[n]);
}

__global__ void draw_kernel(const float* __restrict__ p, const double* __restrict__ cdf, PatchGeometry g,
                            int64_t* __restrict__ corners) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= g.N * g.num) return;
  const int64_t n = i / g.num, j = i % g.num;
  const double* c = cdf + n * g.h;
  const double target = patches::uniform01(g.seed, n, g.num, j) * c[g.h - 1];
  const int64_t y = patches::upper_index(c, g.h, target);
  const int64_t x = patches::pick_in_row(p + (n * g.h + y) * g.w, g.w, target - (y > 0 ? c[y - 1] : 0.0));
  corners[2 * i] = g.axes[y];
  corners[2 * i + 1] = g.axes[g.h + x];
}

}  // namespace

size_t sample_patches_workspace_bytes(int64_t N, int64_t h, int64_t w) {
  return 2 * align_up((size_t)(N * h * w) * sizeof(double)) + align_up((size_t)(N * h) * sizeof(double)) +
         align_up((size_t)N * sizeof(double)) + align_up((size_t)N * sizeof(int));
}

cudaError_t sample_patches_launch(const float* act, const PatchGeometry& g, float* prob, int64_t* corners,
                                  void* workspace, cudaStream_t stream) {
  if (g.N == 0) return cudaSuccess;
  const int64_t cells = g.N * g.h * g.w;
  char* ws = static_cast<char*>(workspace);
  double* hx = reinterpret_cast<double*>(ws);
  ws += align_up((size_t)cells * sizeof(double));
  double* s = reinterpret_cast<double*>(ws);
  ws += align_up((size_t)cells * sizeof(double));
  double* rows = reinterpret_cast<double*>(ws);
  ws += align_up((size_t)(g.N * g.h) * sizeof(double));
  double* total = reinterpret_cast<double*>(ws);
  ws += align_up((size_t)g.N * sizeof(double));
  int* uniform = reinterpret_cast<int*>(ws);
  hsmooth_kernel<<<blocks_for(cells), kBlock, 0, stream>>>(act, g, hx);
  vsmooth_kernel<<<blocks_for(cells), kBlock, 0, stream>>>(hx, g, s);
  row_sum_kernel<<<blocks_for(g.N * g.h), kBlock, 0, stream>>>(s, nullptr, g, rows);
  frame_scan_kernel<<<blocks_for(g.N), kBlock, 0, stream>>>(rows, g, total, uniform, false);
  normalise_kernel<<<blocks_for(cells), kBlock, 0, stream>>>(s, g, total, uniform, prob);
  if (g.num > 0) {
    row_sum_kernel<<<blocks_for(g.N * g.h), kBlock, 0, stream>>>(nullptr, prob, g, rows);
    frame_scan_kernel<<<blocks_for(g.N), kBlock, 0, stream>>>(rows, g, total, uniform, true);
    draw_kernel<<<blocks_for(g.N * g.num), kBlock, 0, stream>>>(prob, rows, g, corners);
  }
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace dctqa
