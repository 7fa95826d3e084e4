// CPU kernel of dctqa::spectral_qk: checks, then the shared spectral kernel
// (csrc/spectral_qk/cpu/spectral_core.cpp) with the cached filter spectra.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/control.h"

#include "spectral_qk/spectral_qk_checks.h"
#include "spectral_qk/cpu/spectral_core.h"

namespace dctqa {
namespace {

at::Tensor spectral_qk_cpu(const at::Tensor& co_in, const at::Tensor& cc_in,
                           const at::Tensor& filters_in, double epsilon) {
  check_spectral_args(co_in, cc_in, filters_in);
  TORCH_CHECK(co_in.device().is_cpu() && filters_in.device().is_cpu(),
              "dctqa: spectral_qk CPU kernel got non-CPU tensors");
  const at::Tensor co = co_in.contiguous();
  const at::Tensor cc = cc_in.contiguous();
  const at::Tensor filt = filters_in.contiguous();
  const int64_t N = co.size(0), H = co.size(2), W = co.size(3);
  const int64_t K = filt.size(0);
  at::Tensor out = at::empty({N, K}, co.options().dtype(at::kDouble));
  if (N == 0 || K == 0) return out;
  auto fs = cpu::filter_spectra(filt.data_ptr<float>(), K, filt.size(1), filt.size(2),
                                filt.size(3), H, W);
  cpu::spectral_qk_planes(co.data_ptr<float>(), cc.data_ptr<float>(), N, *fs, epsilon,
                          out.data_ptr<double>());
  return out;
}

}  // namespace

DCTQA_KERNEL(CPU, "spectral_qk", &spectral_qk_cpu)

}  // namespace dctqa
