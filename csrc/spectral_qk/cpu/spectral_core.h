// The spectral-domain kernel on channel DCTs (shared by dctqa::spectral_qk, whose input
// is the DCTs, and dctqa::spectral_qk_frames, which computes them from the frames), and
// the process-wide cache of filter spectra both use. Free of torch headers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace dctqa {
namespace cpu {

// The filter spectra G[k, c, u, v] of METRIC.md for one (filter bank, H, W), in their
// separable form: G[k, c, u, :] = sum_i p_u^i Hv[k, c, i, :], with
//   pre/pim: p_u^i = exp(-i pi u i / H), H x kh
//   hre/him: Hv[k][c][i][v] = sum_j h[k, c, i, j] exp(-i pi v j / W), K x C x kh x Wp
// (rows padded to Wp = padded_width(W) with zeros). Built in float64, stored as float32.
struct FilterSpectra {
  int64_t K = 0, C = 0, kh = 0, kw = 0, H = 0, W = 0;
  int Wp = 0;
  std::vector<float> filters;  // the bank it was built from (the cache key), K*C*kh*kw
  std::vector<float> pre, pim, hre, him;
  // The whole G, [K][H][re/im][C][Wp], when it fits the cache's budget (see
  // filter_spectra); empty otherwise (the kernel then builds rows from the factors).
  std::vector<float> full;
  std::size_t nbytes() const;
};

// The spectra of `filters` (float32 K x C x kh x kw, contiguous) for H x W frames, from
// the cache when present; built (in parallel) and inserted otherwise. Thread-safe. The
// returned object stays valid while held even if the cache evicts it. The whole G is
// included when it takes at most a quarter of the cache's bound (DCTQA_FULL_SPECTRA=0
// turns that off): reading it costs less than rebuilding its rows on every call.
std::shared_ptr<const FilterSpectra> filter_spectra(const float* filters, int64_t K, int64_t C,
                                                    int64_t kh, int64_t kw, int64_t H, int64_t W);

// State of the cache. bytes <= max_bytes always (a bank whose spectra alone exceed
// max_bytes is built for the call and not kept).
struct SpectraCacheStats {
  int64_t bytes, entries, hits, misses, max_bytes;
};
SpectraCacheStats spectra_cache_stats();
void spectra_cache_clear();                      // drops entries, resets the counters
void spectra_cache_set_max_bytes(int64_t bytes);  // evicts down to the new bound

// Q_k for N frame pairs from their unnormalised channel DCTs co, cc (float32
// N x C x H x W, contiguous), out: N x K float64 (row-major). Parallel (ATen pool).
void spectral_qk_planes(const float* co, const float* cc, int64_t N, const FilterSpectra& fs,
                        double epsilon, double* out);

}  // namespace cpu
}  // namespace dctqa
