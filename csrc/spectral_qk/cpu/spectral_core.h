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
  // The whole G, [K][H][re/im][C][Wp], when the plane kernel (or the streaming kernel
  // for C != 3) will run and it fits the cache's budget (see filter_spectra); empty
  // otherwise (G rows are then built from the factors).
  std::vector<float> full;
  std::size_t nbytes() const;
};

// The spectra of `filters` (float32 K x C x kh x kw, contiguous) for H x W frames, from
// the cache when present; built (in parallel) and inserted otherwise. Thread-safe. The
// returned object stays valid while held even if the cache evicts it. The whole G is
// included when it takes at most a quarter of the cache's bound and a kernel will read
// it (not the streaming kernel for C = 3); DCTQA_FULL_SPECTRA=0 (KernelConfig) turns that off.
std::shared_ptr<const FilterSpectra> filter_spectra(const float* filters, int64_t K, int64_t C,
                                                    int64_t kh, int64_t kw, int64_t H, int64_t W);

// DCTQA_CPU_CHUNK_MB (default 64 MiB, common/control.h): the byte budget of a call's
// channel DCTs and of each worker's kernel state (the plane kernel's planes, or one frame
// pair's when larger; the streaming kernel's row samples and median brackets).
int64_t chunk_budget_bytes();

// State of the cache. bytes <= max_bytes always (a bank whose spectra alone exceed
// max_bytes is built for the call and not kept).
struct SpectraCacheStats {
  int64_t bytes, entries, hits, misses, max_bytes;
};
SpectraCacheStats spectra_cache_stats();
void spectra_cache_clear();                      // drops entries, resets the counters
void spectra_cache_set_max_bytes(int64_t bytes);  // evicts down to the new bound

// G rows of filter k for row pair (u, H-u) and, when `two`, (u+1, H-u-1), written to
// rows[0..3] (u re, u im, H-u re, H-u im) and rows[4..7] (C x Wp each); rows that do not
// exist (u = 0, u = H/2) go wherever those pointers point.
void spectrum_rows(const FilterSpectra& fs, int64_t k, int64_t u, bool two, float* const* rows);

// Q_k for N frame pairs from their unnormalised channel DCTs co, cc (float32
// N x C x H x W, contiguous), out: N x K float64 (row-major). Parallel (ATen pool).
// Uses spectral_qk_stream where it applies (see kernel_mode), else spectral_qk_planes_exact.
void spectral_qk_planes(const float* co, const float* cc, int64_t N, const FilterSpectra& fs,
                        double epsilon, double* out);

// The plane kernel: A^o and A^c of a block of filters are stored whole, then the exact
// lower median is selected and the ratio summed over the stored planes.
void spectral_qk_planes_exact(const float* co, const float* cc, int64_t N, const FilterSpectra& fs,
                              double epsilon, double* out);

// The streaming kernel (spectral_stream.cpp): no planes; the median is bracketed from a
// sample of rows, the ratio is summed with a trial floor and corrected to the exact one.
// Returns false (writing nothing) when the frames are too small for it.
bool spectral_qk_stream(const float* co, const float* cc, int64_t N, const FilterSpectra& fs,
                        double epsilon, double* out);

// Whether spectral_qk_planes takes the streaming kernel for H x W frames (kernel mode and
// frame size; see spectral_stream.cpp).
bool stream_applies(int64_t H, int64_t W);

// Which kernel spectral_qk_planes uses (process-wide; for tests and benchmarks):
// 0 auto (stream when the frames are large enough), 1 planes only, 2 stream whenever
// possible, 3 stream but finish every (frame, filter) by the exact fallback (a test mode).
void set_kernel_mode(int mode);
int kernel_mode();
struct StreamStats {
  // (frame, filter) results of the streaming kernel: streamed, finished by the fallback,
  // and of those the ones whose bracket missed (the others: |e'/e - 1| too large).
  int64_t streamed, fallbacks, missed;
};
StreamStats stream_stats();

}  // namespace cpu
}  // namespace dctqa
