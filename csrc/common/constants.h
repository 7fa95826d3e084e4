// Constants of METRIC.md every op's kernels share (the Python side: dctqa/constants.py).
#pragma once

namespace dctqa {

// Absolute floor of the ratio: eps_k = epsilon * lower_median(A^o_k) + kAbsFloor
// (dctqa.constants.ABS_FLOOR).
constexpr double kAbsFloor = 1e-12;

}  // namespace dctqa
