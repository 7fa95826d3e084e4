// Schema of dctqa::spectral_qk_frames, the whole spectral-domain metric in one op
// (kernel: cpu/spectral_qk_frames_cpu.cpp; fake kernel and torch fallback: dctqa/ops/).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(dctqa, m) {
  // ref, dist: RGB frames [N, 3, H, W], uint8 (or float32 in 0..255), any strides (an
  // N x H x W x 3 array is passed as its permute(0, 3, 1, 2) view, without a copy).
  // Preprocessing (METRIC.md's P): detector channel c = pixel[channel_index[c]] * scale
  // / std[c] - mean[c] / std[c]. filters: float32 [K, 3, kh, kw]. Returns float64
  // [N, K]: Q_k of the spectral domain (the pixel domain is K = 3 identity 1 x 1 filters).
  m.def(
      "spectral_qk_frames(Tensor ref, Tensor dist, Tensor filters, int[] channel_index, "
      "float scale, float[] mean, float[] std, float epsilon) -> Tensor");
}
