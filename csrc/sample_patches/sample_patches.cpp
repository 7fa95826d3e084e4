// Schema of dctqa::sample_patches (kernels: cpu/, cuda/; fake kernel: dctqa/ops/fakes.py; torch fallback:
// dctqa/ops/patches_torch.py, which documents the algorithm step by step).
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(dctqa, m) {
  // act: float32 [N, C, h, w] activation maps (or C = 1: a non-negative map itself); cell
  // (i, j) is centred on frame pixel (i * stride + offset, j * stride + offset) of a
  // height x width frame. Importance = mean_c |act|, smoothed by a Gaussian of `sigma`
  // cells (renormalised at the borders), zeroed where a patch x patch square centred on
  // the cell would leave the frame, normalised to sum 1. Returns (prob float32 [N, h, w],
  // corners int64 [N, num, 2] = (top, left) of `num` patches drawn from prob with `seed`).
  m.def("sample_patches(Tensor act, int height, int width, int stride, int offset, int patch, "
        "int num, int seed, float sigma) -> (Tensor, Tensor)");
}
