// CUDA entry point of dctqa::sample_patches: checks, the per-axis geometry and Gaussian
// taps computed on the host (exactly as the CPU kernel does) and copied to the device,
// outputs and workspace from the caching allocator, launch on the current stream.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "common/control.h"

#include <tuple>
#include <vector>

#include "sample_patches/sample_patches.h"
#include "sample_patches/sample_patches_checks.h"
#include "sample_patches/cuda/sample_patches_cuda.h"

namespace dctqa {
namespace {

// Host tables: taps (radius + 1) then the border norms of the w columns and h rows.
std::vector<double> host_taps(int64_t h, int64_t w, int64_t r, double sigma) {
  std::vector<double> t((size_t)(r + 1 + w + h), 0.0);
  patches::gauss_taps(sigma, r, t.data());
  for (int64_t pass = 0; pass < 2; ++pass) {
    const int64_t n = pass == 0 ? w : h;
    double* norm = t.data() + r + 1 + (pass == 0 ? 0 : w);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = -r; k <= r; ++k)
        if (i + k >= 0 && i + k < n) norm[i] += t[k < 0 ? -k : k];
  }
  return t;
}

std::vector<int64_t> host_axes(int64_t h, int64_t w, int64_t height, int64_t width, int64_t stride,
                               int64_t offset, int64_t patch) {
  std::vector<uint8_t> vy((size_t)h), vx((size_t)w);
  std::vector<int64_t> a((size_t)(2 * (h + w)));
  patches::make_axis(h, height, stride, offset, patch, vy.data(), a.data());
  patches::make_axis(w, width, stride, offset, patch, vx.data(), a.data() + h);
  for (int64_t y = 0; y < h; ++y) a[h + w + y] = vy[y];
  for (int64_t x = 0; x < w; ++x) a[2 * h + w + x] = vx[x];
  return a;
}

std::tuple<at::Tensor, at::Tensor> sample_patches_cuda(const at::Tensor& act_in, int64_t height,
                                                       int64_t width, int64_t stride, int64_t offset,
                                                       int64_t patch, int64_t num, int64_t seed,
                                                       double sigma) {
  check_sample_patches_args(act_in, height, width, stride, offset, patch, num, sigma);
  TORCH_CHECK(act_in.is_cuda(), "dctqa: sample_patches CUDA kernel got a non-CUDA tensor");
  const c10::cuda::CUDAGuard guard(act_in.device());
  const at::Tensor act = act_in.contiguous();
  const int64_t N = act.size(0), C = act.size(1), h = act.size(2), w = act.size(3);
  const int64_t r = patches::gauss_radius(sigma);
  std::vector<double> taps = host_taps(h, w, r, sigma);
  std::vector<int64_t> axes = host_axes(h, w, height, width, stride, offset, patch);
  const at::Tensor taps_d = at::from_blob(taps.data(), {(int64_t)taps.size()}, at::kDouble).to(act.device());
  const at::Tensor axes_d = at::from_blob(axes.data(), {(int64_t)axes.size()}, at::kLong).to(act.device());
  at::Tensor prob = at::empty({N, h, w}, act.options());
  at::Tensor corners = at::empty({N, num, 2}, act.options().dtype(at::kLong));
  if (N == 0) return {prob, corners};
  at::Tensor ws = at::empty({(int64_t)cuda::sample_patches_workspace_bytes(N, h, w)},
                            act.options().dtype(at::kByte));
  cuda::PatchGeometry g{N, C, h, w, num, r, (uint64_t)seed, taps_d.data_ptr<double>(),
                        axes_d.data_ptr<int64_t>()};
  const cudaError_t err = cuda::sample_patches_launch(act.data_ptr<float>(), g, prob.data_ptr<float>(),
                                                      corners.data_ptr<int64_t>(), ws.data_ptr(),
                                                      c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "dctqa: sample_patches CUDA launch failed: ", cudaGetErrorString(err));
  return {prob, corners};
}

}  // namespace

DCTQA_KERNEL(CUDA, "sample_patches", &sample_patches_cuda)

}  // namespace dctqa
