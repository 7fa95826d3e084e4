// CPU kernel of dctqa::spectral_qk_frames: uint8 (or float32) RGB frames to Q_k.
//
// Per chunk of frame pairs (sized to DCTQA_CPU_CHUNK_MB): each of the 3 channels of
// both frames is read from the frames' memory (any strides) and transformed into a
// float32 plane by pocketfft's DCT-II (dct2_plane.cpp, third_party/pocketfft). The
// preprocessing is affine per channel, x = a_c * p + b_c, so it is folded into the
// transform: DCT(x) = a_c * DCT(p) + b_c * H * W at (0, 0) (the DCT of a constant).
// The chunk's DCTs then go to the shared spectral kernel with the cached filter spectra.
// Memory: 2 * chunk * 3 * H * W floats of DCTs plus the kernel's per-thread buffers;
// nothing grows with the number of frames.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/control.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "common/checks.h"
#include "spectral_qk/cpu/dct2_plane.h"
#include "spectral_qk/cpu/spectral_core.h"

namespace dctqa {
namespace {

struct Affine {
  int src[3];     // RGB index feeding detector channel c
  float a[3];     // scale / std[c]
  double b[3];    // -mean[c] / std[c]
};

Affine make_affine(at::IntArrayRef channel_index, double scale, at::ArrayRef<double> mean,
                   at::ArrayRef<double> stdv) {
  TORCH_CHECK(channel_index.size() == 3 && mean.size() == 3 && stdv.size() == 3,
              "dctqa: channel_index, mean and std need 3 values each, got ", channel_index.size(),
              ", ", mean.size(), ", ", stdv.size());
  TORCH_CHECK(std::isfinite(scale) && scale > 0, "dctqa: scale must be finite and > 0, got ", scale);
  Affine p;
  for (int c = 0; c < 3; ++c) {
    TORCH_CHECK(channel_index[c] >= 0 && channel_index[c] < 3,
                "dctqa: channel_index values must be 0, 1 or 2, got ", channel_index);
    TORCH_CHECK(std::isfinite(stdv[c]) && stdv[c] > 0 && std::isfinite(mean[c]),
                "dctqa: std must be finite and > 0 and mean finite, got mean ", mean, ", std ", stdv);
    p.src[c] = (int)channel_index[c];
    p.a[c] = (float)(scale / stdv[c]);
    p.b[c] = -mean[c] / stdv[c];
  }
  return p;
}

void check_frames(const at::Tensor& ref, const at::Tensor& dist, const at::Tensor& filters) {
  TORCH_CHECK(ref.dim() == 4 && ref.size(1) == 3,
              "dctqa: ref must be [N, 3, H, W] RGB frames, got ", ref.sizes());
  TORCH_CHECK(ref.sizes() == dist.sizes(), "dctqa: ref and dist must have the same shape, got ",
              ref.sizes(), " and ", dist.sizes());
  TORCH_CHECK(ref.scalar_type() == dist.scalar_type() &&
                  (ref.scalar_type() == at::kByte || ref.scalar_type() == at::kFloat),
              "dctqa: ref and dist must both be uint8 or both float32, got ", ref.scalar_type(),
              " and ", dist.scalar_type());
  TORCH_CHECK(ref.device().is_cpu() && dist.device().is_cpu() && filters.device().is_cpu(),
              "dctqa: spectral_qk_frames CPU kernel got non-CPU tensors");
  check_float32(filters, "filters", 4);
  TORCH_CHECK(filters.size(1) == 3, "dctqa: filters must be [K, 3, kh, kw], got ", filters.sizes());
  TORCH_CHECK(filters.size(2) > 0 && filters.size(3) > 0, "dctqa: empty filters ", filters.sizes());
  TORCH_CHECK(ref.size(2) > 0 && ref.size(3) > 0, "dctqa: empty frames ", ref.sizes());
  TORCH_CHECK(ref.size(2) * ref.size(3) < (int64_t(1) << 31),
              "dctqa: frames larger than 2^31 pixels are not supported");
}

// The channel DCTs of frames [n0, n0+nn) of ref and dist into co, cc ([nn, 3, H, W]).
void frames_to_dcts(const at::Tensor& ref, const at::Tensor& dist, int64_t n0, int64_t nn,
                    const Affine& p, float* co, float* cc) {
  const int64_t H = ref.size(2), W = ref.size(3), HW = H * W;
  at::parallel_for(0, nn * 6, 1, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int64_t t = item / 6, side = (item / 3) % 2, c = item % 3;
      const at::Tensor& src = side == 0 ? ref : dist;
      float* plane = (side == 0 ? co : cc) + (t * 3 + c) * HW;
      const int64_t off = (n0 + t) * src.stride(0) + p.src[c] * src.stride(1);
      if (src.scalar_type() == at::kByte)
        cpu::dct2_plane(src.data_ptr<uint8_t>() + off, src.stride(2), src.stride(3), H, W, p.a[c], plane);
      else
        cpu::dct2_plane(src.data_ptr<float>() + off, src.stride(2), src.stride(3), H, W, p.a[c], plane);
      plane[0] += (float)(p.b[c] * (double)HW);
    }
  });
}

at::Tensor spectral_qk_frames_cpu(const at::Tensor& ref, const at::Tensor& dist,
                                  const at::Tensor& filters_in, at::IntArrayRef channel_index,
                                  double scale, at::ArrayRef<double> mean, at::ArrayRef<double> stdv,
                                  double epsilon) {
  check_frames(ref, dist, filters_in);
  const Affine p = make_affine(channel_index, scale, mean, stdv);
  TORCH_CHECK(std::isfinite(epsilon) && epsilon >= 0, "dctqa: epsilon must be finite and >= 0, got ",
              epsilon);
  const at::Tensor filt = filters_in.contiguous();
  const int64_t N = ref.size(0), H = ref.size(2), W = ref.size(3), K = filt.size(0);
  at::Tensor out = at::empty({N, K}, filt.options().dtype(at::kDouble));
  if (N == 0 || K == 0) return out;
  auto fs = cpu::filter_spectra(filt.data_ptr<float>(), K, 3, filt.size(2), filt.size(3), H, W);
  const int64_t pair_bytes = (int64_t)(2 * 3 * sizeof(float)) * H * W;
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(N, cpu::chunk_budget_bytes() / pair_bytes));
  at::Tensor co = at::empty({chunk, 3, H, W}, filt.options());
  at::Tensor cc = at::empty({chunk, 3, H, W}, filt.options());
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t nn = std::min(chunk, N - n0);
    frames_to_dcts(ref, dist, n0, nn, p, co.data_ptr<float>(), cc.data_ptr<float>());
    cpu::spectral_qk_planes(co.data_ptr<float>(), cc.data_ptr<float>(), nn, *fs, epsilon,
                            out.data_ptr<double>() + n0 * K);
  }
  return out;
}

}  // namespace

DCTQA_KERNEL(CPU, "spectral_qk_frames", &spectral_qk_frames_cpu)

}  // namespace dctqa
