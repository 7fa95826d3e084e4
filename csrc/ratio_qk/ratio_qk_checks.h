// Argument checks of dctqa::ratio_qk shared by its CPU and CUDA entry points.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "common/checks.h"

namespace dctqa {

inline void check_ratio_args(const at::Tensor& ao, const at::Tensor& ac) {
  check_float32(ao, "ao", 3);
  check_float32(ac, "ac", 3);
  TORCH_CHECK(ao.sizes() == ac.sizes(), "dctqa: ao and ac must have the same shape, got ",
              ao.sizes(), " and ", ac.sizes());
  TORCH_CHECK(ao.device() == ac.device(), "dctqa: ao and ac must be on one device");
  TORCH_CHECK(ao.size(2) > 0, "dctqa: ao/ac have no frequencies (M = 0)");
  TORCH_CHECK(ao.size(2) < (int64_t(1) << 31), "dctqa: M >= 2^31 is not supported");
}

}  // namespace dctqa
