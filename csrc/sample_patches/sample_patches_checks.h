// Argument checks of dctqa::sample_patches shared by its CPU and CUDA entry points.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "common/checks.h"

namespace dctqa {

inline void check_sample_patches_args(const at::Tensor& act, int64_t height, int64_t width,
                                      int64_t stride, int64_t offset, int64_t patch,
                                      int64_t num, double sigma) {
  check_float32(act, "act", 4);
  TORCH_CHECK(act.size(1) > 0 && act.size(2) > 0 && act.size(3) > 0,
              "dctqa: sample_patches needs non-empty maps, got ", act.sizes());
  TORCH_CHECK(stride >= 1 && offset >= 0, "dctqa: stride must be >= 1 and offset >= 0");
  TORCH_CHECK(patch >= 1 && patch <= height && patch <= width, "dctqa: patch ", patch,
              " does not fit a ", height, "x", width, " frame");
  TORCH_CHECK(num >= 0, "dctqa: num must be >= 0, got ", num);
  TORCH_CHECK(sigma >= 0 && sigma <= 1e4, "dctqa: sigma must be in [0, 1e4], got ", sigma);
  TORCH_CHECK(act.size(2) * act.size(3) < (int64_t(1) << 31),
              "dctqa: maps larger than 2^31 cells are not supported");
}

}  // namespace dctqa
