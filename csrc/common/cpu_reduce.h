// The reduction every op's CPU kernel shares (see cpu_reduce.cpp), free of torch headers.
// Every function works on raw, contiguous float32 buffers.
#pragma once
#include <cstddef>
#include <cstdint>

namespace dctqa {
namespace cpu {

// sum_j (ao[j] - ac[j]) / (ac[j] + eps), accumulated in double: the sum of r_j - 1 for
// METRIC.md's ratio r_j = (ao[j] + eps) / (ac[j] + eps), so Q_k = 1 + sum / n. Every term
// is exactly 0 where ao[j] == ac[j]: identical frames give Q_k = 1 exactly.
double ratio_excess_sum(const float* ao, const float* ac, std::size_t n, float eps);

// Value of 0-based rank r (ascending) among x[0..n), as torch.kthvalue(k=r+1).
// Copy and select_ranks for small n; else a bracket from a strided sample, one counting
// pass and select_ranks on the gathered values (radix selection if the bracket misses).
// Does not modify x.
float select_rank(const float* x, std::size_t n, std::size_t r);

// The same with a caller-made sample of s values of x (spread over x; it may be reordered):
// the sample only sets a bracket around rank r, the result is exact whatever it holds.
float select_rank_sampled(const float* x, std::size_t n, std::size_t r, float* sample,
                          std::size_t s);

// The same by three radix-histogram passes only (the fallback of select_rank).
float select_rank_radix(const float* x, std::size_t n, std::size_t r);

// Exact values of the 0-based ranks r[0..m) (m <= 4, any order) among x[0..n) (n >= 1, no
// NaN) into out[0..m), by one histogram of order-preserving keys over the range of x (at
// most 4096 bins), then std::nth_element among the values of the bins holding the ranks
// only. scratch: room for n + 1 floats; it may be x itself when m == 1 (x is then
// reordered), else x is not modified.
void select_ranks(const float* x, std::size_t n, const std::size_t* r, int m, float* out, float* scratch);

// One pass: *below += #{x < lo}; appends the x with lo <= x <= hi to buf[*cnt..] and
// advances *cnt. buf holds cap + 16 floats. Returns false (counts then incomplete) when
// more than cap values would be gathered in all.
bool bracket_count_gather(const float* x, std::size_t n, float lo, float hi, float* buf,
                          std::size_t cap, std::size_t* below, std::size_t* cnt);

// Lower median: rank floor((n-1)/2).
inline float lower_median(const float* x, std::size_t n) {
  return select_rank(x, n, (n - 1) / 2);
}

}  // namespace cpu
}  // namespace dctqa
