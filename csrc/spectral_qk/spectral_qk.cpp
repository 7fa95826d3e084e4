// Schema of dctqa::spectral_qk (kernels: cpu/, cuda/; fake kernel: dctqa/ops/).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(dctqa, m) {
  // co, cc: float32 [N, C, H, W], unnormalised 2-D DCT-II of the preprocessed reference
  // and distorted frames; filters: float32 [K, C, kh, kw]. Returns float64 [N, K]:
  // Q_k of METRIC.md's spectral domain for every frame and filter.
  m.def("spectral_qk(Tensor co, Tensor cc, Tensor filters, float epsilon) -> Tensor");
}
