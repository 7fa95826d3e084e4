// CPU kernel of dctqa::ratio_qk: per (frame, filter) row of M magnitudes, radix
// selection of the lower median of ao (no copy, no reordering), then the ratio mean.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include "common/control.h"

#include "common/constants.h"
#include "common/cpu_reduce.h"
#include "ratio_qk/ratio_qk_checks.h"

namespace dctqa {
namespace {

at::Tensor ratio_qk_cpu(const at::Tensor& ao_in, const at::Tensor& ac_in, double epsilon) {
  check_ratio_args(ao_in, ac_in);
  TORCH_CHECK(ao_in.device().is_cpu(), "dctqa: ratio_qk CPU kernel got non-CPU tensors");
  const at::Tensor ao = ao_in.contiguous();
  const at::Tensor ac = ac_in.contiguous();
  const int64_t N = ao.size(0), K = ao.size(1), M = ao.size(2);
  at::Tensor out = at::empty({N, K}, ao.options().dtype(at::kDouble));
  const float* pa = ao.data_ptr<float>();
  const float* pc = ac.data_ptr<float>();
  double* po = out.data_ptr<double>();
  at::parallel_for(0, N * K, 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* a = pa + r * M;
      const double m = (double)cpu::lower_median(a, (size_t)M);
      const float eps = (float)(epsilon * m + kAbsFloor);
      po[r] = 1.0 + cpu::ratio_excess_sum(a, pc + r * M, (size_t)M, eps) / (double)M;
    }
  });
  return out;
}

}  // namespace

DCTQA_KERNEL(CPU, "ratio_qk", &ratio_qk_cpu)

}  // namespace dctqa
