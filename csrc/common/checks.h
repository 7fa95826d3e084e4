// Argument checks shared by the CPU and CUDA entry points of every op (each op's own
// argument checks: csrc/<op>/<op>_checks.h). No op reads the environment: dctqa.settings
// reads the DCTQA_* variables once and hands them over (common/control.h).
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace dctqa {

inline void check_float32(const at::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.scalar_type() == at::kFloat, "dctqa: ", name, " must be float32, got ",
              t.scalar_type());
  TORCH_CHECK(t.dim() == dim, "dctqa: ", name, " must have ", dim, " dimensions, got ",
              t.dim());
}

}  // namespace dctqa
