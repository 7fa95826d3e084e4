// Schema of dctqa::ratio_qk (kernels: cpu/, cuda/; fake kernel: dctqa/ops/).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(dctqa, m) {
  // ao, ac: float32 [N, K, M] magnitudes of the reference / distorted responses over M
  // frequencies. Returns float64 [N, K]: mean_m (ao + eps_k) / (ac + eps_k) with
  // eps_k = epsilon * lower_median(ao[n, k, :]) + kAbsFloor (common/constants.h; METRIC.md, "Ratio and reduction").
  m.def("ratio_qk(Tensor ao, Tensor ac, float epsilon) -> Tensor");
}
