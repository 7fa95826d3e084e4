// Argument checks of dctqa::spectral_qk shared by its CPU and CUDA entry points.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "common/checks.h"

namespace dctqa {

// Returns nothing; throws c10::Error with a message.
inline void check_spectral_args(const at::Tensor& co, const at::Tensor& cc,
                                const at::Tensor& filters) {
  check_float32(co, "co", 4);
  check_float32(cc, "cc", 4);
  check_float32(filters, "filters", 4);
  TORCH_CHECK(co.sizes() == cc.sizes(), "dctqa: co and cc must have the same shape, got ",
              co.sizes(), " and ", cc.sizes());
  TORCH_CHECK(filters.size(1) == co.size(1), "dctqa: filters have ", filters.size(1),
              " input channels but the frames have ", co.size(1));
  TORCH_CHECK(co.device() == cc.device(), "dctqa: co and cc must be on one device");
  TORCH_CHECK(co.size(2) > 0 && co.size(3) > 0, "dctqa: empty frames ", co.sizes());
  TORCH_CHECK(filters.size(2) > 0 && filters.size(3) > 0, "dctqa: empty filters ",
              filters.sizes());
  TORCH_CHECK(co.size(2) * co.size(3) < (int64_t(1) << 31),
              "dctqa: frames larger than 2^31 pixels are not supported");
}

}  // namespace dctqa
