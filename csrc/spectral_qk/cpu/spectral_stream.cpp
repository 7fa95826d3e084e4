// The streaming spectral kernel: Q_k without storing the magnitude planes.
//
// The plane kernel (spectral_core.cpp) writes A^o and A^c of every filter whole, then
// reads them twice more (the median's bracket pass, the ratio pass). Here every row of
// A^o and A^c lives only in L1:
//  1. A sample of rows (the row pairs u = S/2, S/2 + S, ... and their mirrors H - u, about
//     kSampleValues values) is computed first and kept. Its quantiles (select_ranks in
//     common/cpu_reduce) give a trial median m~ (so a trial floor e = EPSILON m~ + 1e-12)
//     and a bracket [lo, hi] around the rank of the lower median.
//  2. Every other row pair is computed once; of each row the pass counts the A^o below
//     lo, gathers those inside [lo, hi], and adds the ratio with the trial floor and four
//     correction moments (ratio_moments in spectral_rows.cpp). For 3-channel frames the
//     fused tile leaves the squared channel sums and one pass takes their square roots,
//     the moments and the bracket (squared_moments_bracket).
//  3. The exact lower median follows from the count and select_ranks on the gathered
//     values; the ratio sum for the exact floor e' = e (1 + d) is the moments' series
//     in d (the moments sum r - 1, not r: Q = 1 + their series / HW, exactly 1 for
//     identical frames), whose remainder is below |d|^5 / (1 - |d|) of sum |r - 1| (below 3.6e-6 of
//     it at the accepted |d| <= 0.08; a typical d is below 0.02, remainder 3e-9).
// Whenever the bracket misses the median, the gather buffer overflows or |d| > 0.08,
// that (frame, filter) is computed again by the plane method (exact_one): the bound
// above holds in every case. Working memory per (frame, filter): the
// sample (2 x kSampleValues floats) and the gather buffer; no plane of H x W.
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "common/constants.h"
#include "common/cpu_reduce.h"
#include "spectral_qk/cpu/spectral_core.h"
#include "spectral_qk/cpu/spectral_rows.h"

namespace dctqa {
namespace cpu {

namespace {

std::atomic<int> g_mode{0};
std::atomic<int64_t> g_streamed{0}, g_fallbacks{0}, g_missed{0};

constexpr int64_t kSampleValues = 16384;  // about this many values of A^o in the row sample
constexpr int64_t kMinPixels = 3072;      // auto mode streams from 64 x 48 pixels on (below:
                                          // many bracket misses, and no time to gain)
constexpr double kMaxShift = 0.08;        // accepted |e' / e - 1|
constexpr double kBracketSd = 3.5;        // bracket half-width in sample-rank deviations

// The sample: row pairs u = S/2, S/2 + S, ... <= H/2 with their mirrors H - u (centred
// in their strata: the large low-frequency row u = 0 would be over-represented).
struct Geometry {
  int64_t H, W, HW, S, s;  // s: values in the sample
  bool sampled(int64_t u) const { return u % S == S / 2; }
};

inline bool has_mirror(int64_t H, int64_t u) { return H - u < H && H - u != u; }

// State of one (frame, filter); buffers point into the worker's scratch.
struct Acc {
  double m[kMomentLanes];      // double lanes of the moments (see flush_moments)
  float lanes[kMomentLanes];  // float partial sums of m (flushed into m)
  int lane_n;                 // values per lane since the last flush
  Bracket br;                 // br.buf: the gather buffer (br.cap + 16)
  float eg;
  float *so, *sc;  // sample A^o, A^c (s each)
};

struct Ctx {
  const float *pco, *pcc;
  const FilterSpectra* fs;
  Geometry g;
  int64_t n0, nn, k0, kn;
  Acc* acc;           // [nn][kn]
  const float** rows;  // per filter: rows u, H-u, u+1, H-u-1 (re; im C*Wp later)
};

// One row of A^o and A^c (G row gre/gim).
inline void both_magnitudes(const float* xo, const float* xc, int64_t cstride, const float* gre,
                            const float* gim, const FilterSpectra& fs, int64_t n, float* o, float* c) {
  magnitude_row(xo, cstride, gre, gim, (int)fs.C, (int)n, fs.Wp, o);
  magnitude_row(xc, cstride, gre, gim, (int)fs.C, (int)n, fs.Wp, c);
}

// A^o and A^c of row ua of frame t for filter q into o[0..W), c[0..W), and of its mirror
// row H - ua (if any) into o[W..2W), c[W..2W); returns the number of rows (1 or 2). For
// C = 3 the filter spectrum is built in registers from its separable form (no G row is
// read or written), and without `take_sqrt` the values are (A / 4)^2 (see add_values);
// otherwise the G rows of slot s (0: pair u, 1: pair u+1) are used and the values are A.
int pair_magnitudes(const Ctx& x, int64_t t, int64_t q, int64_t ua, int s, bool take_sqrt, float* o,
                    float* c) {
  const FilterSpectra& fs = *x.fs;
  const int64_t H = x.g.H, W = x.g.W, HW = x.g.HW, CW = fs.C * fs.Wp;
  const float* xo = x.pco + (x.n0 + t) * fs.C * HW;
  const float* xc = x.pcc + (x.n0 + t) * fs.C * HW;
  const bool mirror = has_mirror(H, ua);
  const int64_t ub = mirror ? H - ua : ua;
  if (fs.C == 3) {
    const int64_t k = x.k0 + q, hv = 3 * fs.kh * fs.Wp;
    fused_pair_magnitudes(fs.hre.data() + k * hv, fs.him.data() + k * hv, fs.pre.data() + ua * fs.kh,
                          fs.pim.data() + ua * fs.kh, (int)fs.kh, (int)W, fs.Wp, xo + ua * W, xc + ua * W,
                          xo + ub * W, xc + ub * W, HW, mirror, take_sqrt, o, c, o + W, c + W);
    return mirror ? 2 : 1;
  }
  const float* g0 = x.rows[q * 4 + 2 * s];
  both_magnitudes(xo + ua * W, xc + ua * W, HW, g0, g0 + CW, fs, W, o, c);
  if (!mirror) return 1;
  const float* g1 = x.rows[q * 4 + 2 * s + 1];
  both_magnitudes(xo + ub * W, xc + ub * W, HW, g1, g1 + CW, fs, W, o + W, c + W);
  return 2;
}

// Points rows[] at the G rows of pairs u (and u+1 when `two`) for filters k0..k0+kn:
// the cached whole G, or rows built into gbuf (kn x 8 x C x Wp floats).
void point_rows(const FilterSpectra& fs, int64_t k0, int64_t kn, int64_t u, bool two, float* gbuf,
                const float** rows) {
  const int64_t H = fs.H, CW = fs.C * fs.Wp;
  for (int64_t q = 0; q < kn; ++q) {
    const float** rq = rows + q * 4;
    if (!fs.full.empty()) {
      for (int s = 0; s < (two ? 2 : 1); ++s) {
        const int64_t ua = u + s, ub = H - ua;
        rq[2 * s] = fs.full.data() + ((k0 + q) * H + ua) * 2 * CW;
        rq[2 * s + 1] = has_mirror(H, ua) ? fs.full.data() + ((k0 + q) * H + ub) * 2 * CW : nullptr;
      }
      continue;
    }
    float* gq = gbuf + q * 8 * CW;
    float* at[8];
    for (int j = 0; j < 8; ++j) at[j] = gq + j * CW;
    spectrum_rows(fs, k0 + q, u, two, at);
    rq[0] = at[0], rq[1] = at[2], rq[2] = at[4], rq[3] = at[6];
  }
}

// Bracket [lo, hi] around the median's rank and the trial floor of one (frame, filter)
// from its sample; then the sample's own values are counted and summed.
void start_acc(Acc& a, const Geometry& g, double epsilon, float* tmp) {
  const std::size_t s = (std::size_t)g.s, r = (std::size_t)(g.HW - 1) / 2;
  const double q = (double)r * (double)s / (double)g.HW;
  const double d = kBracketSd * std::sqrt(q * (1.0 - q / (double)s)) + 2.0;
  const long lo_i = (long)std::floor(q - d), hi_i = (long)std::ceil(q + d);
  Bracket& b = a.br;
  b.lo = -INFINITY, b.hi = INFINITY;
  // The sample values of ranks lo_i and hi_i where they exist (the sample stays in place).
  std::size_t ranks[2];
  float vals[2];
  int m = 0;
  if (lo_i >= 0) ranks[m++] = (std::size_t)lo_i;
  if (hi_i < (long)s) ranks[m++] = (std::size_t)hi_i;
  if (m > 0) select_ranks(a.so, s, ranks, m, vals, tmp);
  if (lo_i >= 0) b.lo = vals[0];
  if (hi_i < (long)s) b.hi = vals[m - 1];
  // Trial floor from the bracket's middle (the median lies inside it but for a miss).
  double mid = std::isfinite(b.lo) ? (std::isfinite(b.hi) ? 0.5 * ((double)b.lo + b.hi) : b.lo) : b.hi;
  if (!std::isfinite(mid)) {  // no bracket at all (a sample too small for one)
    const std::size_t half = s / 2;
    float v;
    select_ranks(a.so, s, &half, 1, &v, tmp);
    mid = v;
  }
  a.eg = (float)(epsilon * mid + kAbsFloor);
  std::fill(a.m, a.m + kMomentLanes, 0.0);
  std::fill(a.lanes, a.lanes + kMomentLanes, 0.f);
  a.lane_n = 0;
  b.below = b.cnt = 0;
  constexpr std::size_t step = (std::size_t)kLaneTerms * kRowPad;
  for (std::size_t j = 0; j < s; j += step) {
    ratio_moments(a.so + j, a.sc + j, std::min(step, s - j), a.eg, a.lanes);
    flush_moments(a.lanes, a.m);
  }
  b.ok = bracket_count_gather(a.so, s, b.lo, b.hi, b.buf, b.cap, &b.below, &b.cnt);
}

// Q_k of frame t, filter k by the plane method (the exact fallback).
double exact_one(const float* xo, const float* xc, const FilterSpectra& fs, int64_t k, double epsilon) {
  const int64_t H = fs.H, W = fs.W, HW = H * W, CW = fs.C * fs.Wp;
  std::vector<float> ao((size_t)HW), ac((size_t)HW), g(fs.full.empty() ? (size_t)(8 * CW) : 0);
  const float* rows[4];
  for (int64_t u = 0; u <= H / 2; ++u) {
    point_rows(fs, k, 1, u, false, g.data(), rows);
    for (int side = 0; side < 2; ++side) {
      const int64_t uu = side == 0 ? u : H - u;
      if (side == 1 && !has_mirror(H, u)) continue;
      const float* gr = rows[side];
      magnitude_row(xo + uu * W, HW, gr, gr + CW, (int)fs.C, (int)W, fs.Wp, ao.data() + uu * W);
      magnitude_row(xc + uu * W, HW, gr, gr + CW, (int)fs.C, (int)W, fs.Wp, ac.data() + uu * W);
    }
  }
  const double m = (double)select_rank(ao.data(), (size_t)HW, (size_t)(HW - 1) / 2);
  const float eps = (float)(epsilon * m + kAbsFloor);
  return 1.0 + ratio_excess_sum(ao.data(), ac.data(), (size_t)HW, eps) / (double)HW;
}

// Q_k from a finished accumulator, or NaN when it cannot give the exact value.
double finish_acc(Acc& a, const Geometry& g, double epsilon) {
  flush_moments(a.lanes, a.m);
  const std::size_t r = (std::size_t)(g.HW - 1) / 2;
  if (g_mode.load() == 3) return NAN;
  const Bracket& b = a.br;
  if (!b.ok || b.below > r || r >= b.below + b.cnt) {
    g_missed.fetch_add(1);  // the bracket missed the median or the gather overflowed
    return NAN;
  }
  const std::size_t k = r - b.below;
  float m;
  select_ranks(b.buf, b.cnt, &k, 1, &m, b.buf);
  const float eps = (float)(epsilon * (double)m + kAbsFloor);
  const double d = (double)eps / (double)a.eg - 1.0;
  if (!(std::fabs(d) <= kMaxShift)) return NAN;
  double mk[kMomentTerms + 1] = {};
  for (int k = 0; k <= kMomentTerms; ++k)
    for (int t = 0; t < kRowPad; ++t) mk[k] += a.m[k * kRowPad + t];
  double excess = mk[0], p = 1.0;  // sum of r - 1 with the exact floor (0 for identical frames)
  for (int n = 1; n <= kMomentTerms; ++n) {
    p *= -d;
    excess += p * mk[n];
  }
  return 1.0 + excess / (double)g.HW;
}

// Adds rows to an accumulator, moments and bracket: A^o, A^c (n values each) or, when
// `squared`, (A^o / 4)^2 and (A^c / 4)^2 (overwritten with A^o, A^c on some CPUs).
inline void add_values(Acc& a, float* o, float* c, int64_t n, bool squared) {
  constexpr int64_t step = (int64_t)(kLaneTerms - 1) * kRowPad;
  for (int64_t j = 0; j < n; j += step) {
    const int64_t m = std::min(step, n - j);
    const int per_lane = (int)(m / kRowPad) + 1;  // at most, with the tail
    if (a.lane_n + per_lane > kLaneTerms) {
      flush_moments(a.lanes, a.m);
      a.lane_n = 0;
    }
    if (squared) squared_moments_bracket(o + j, c + j, (size_t)m, a.eg, a.lanes, &a.br);
    else moments_bracket(o + j, c + j, (size_t)m, a.eg, a.lanes, &a.br);
    a.lane_n += per_lane;
  }
}

// One work item: frames n0..n0+nn, filters k0..k0+kn.
void stream_item(Ctx& x, double epsilon, float* gbuf, float* rowbuf, float* tmp, double* pout) {
  const FilterSpectra& fs = *x.fs;
  const Geometry& g = x.g;
  const int64_t H = g.H, W = g.W;
  // 1. The sample rows, kept: pair j at so[2jW ...] (row u), so[(2j+1)W ...] (row H-u).
  for (int64_t u = g.S / 2, j = 0; u <= H / 2; u += g.S, ++j) {
    if (fs.C != 3) point_rows(fs, x.k0, x.kn, u, false, gbuf, x.rows);
    for (int64_t t = 0; t < x.nn; ++t)
      for (int64_t q = 0; q < x.kn; ++q) {
        Acc& a = x.acc[t * x.kn + q];
        pair_magnitudes(x, t, q, u, 0, true, a.so + 2 * j * W, a.sc + 2 * j * W);
      }
  }
  for (int64_t j = 0; j < x.nn * x.kn; ++j) start_acc(x.acc[j], g, epsilon, tmp);
  // 2. Every other row pair, streamed through L1-sized row buffers.
  float* bo = rowbuf;
  float* bc = rowbuf + 2 * W;
  for (int64_t u = 0; u <= H / 2; u += 2) {
    const bool two = u + 1 <= H / 2;
    if (g.sampled(u) && (!two || g.sampled(u + 1))) continue;
    if (fs.C != 3) point_rows(fs, x.k0, x.kn, u, two, gbuf, x.rows);
    for (int s = 0; s < (two ? 2 : 1); ++s) {
      if (g.sampled(u + s)) continue;
      for (int64_t t = 0; t < x.nn; ++t)
        for (int64_t q = 0; q < x.kn; ++q) {
          const int rows = pair_magnitudes(x, t, q, u + s, s, fs.C != 3, bo, bc);
          add_values(x.acc[t * x.kn + q], bo, bc, rows * W, fs.C == 3);
        }
    }
  }
  // 3. Exact median, corrected sum; the plane method where that fails.
  for (int64_t t = 0; t < x.nn; ++t)
    for (int64_t q = 0; q < x.kn; ++q) {
      double v = finish_acc(x.acc[t * x.kn + q], g, epsilon);
      if (std::isnan(v)) {
        const int64_t CHW = fs.C * g.HW;
        v = exact_one(x.pco + (x.n0 + t) * CHW, x.pcc + (x.n0 + t) * CHW, fs, x.k0 + q, epsilon);
        g_fallbacks.fetch_add(1);
      } else {
        g_streamed.fetch_add(1);
      }
      pout[(x.n0 + t) * fs.K + x.k0 + q] = v;
    }
}

// The sample geometry for H x W, or S = 0 when the kernel does not apply.
Geometry plan_geometry(int64_t H, int64_t W, int mode) {
  Geometry g{H, W, H * W, 0, 0};
  if (mode == 1 || H < 4) return g;
  const int64_t S = std::max<int64_t>(2, g.HW / kSampleValues);
  if (mode == 0 && g.HW < kMinPixels) return g;
  int64_t s = 0;
  for (int64_t u = S / 2; u <= H / 2; u += S) s += has_mirror(H, u) ? 2 * W : W;
  if (s < 64) return g;
  g.S = S, g.s = s;
  return g;
}

// Bracket half-width (ranks of the plane) -> gather capacity.
std::size_t gather_cap(const Geometry& g) {
  const double q = 0.5 * (double)g.s;
  const double d = kBracketSd * std::sqrt(q * 0.5) + 2.0;
  const double cap = 3.0 * (2.0 * d + 3.0) * (double)g.HW / (double)g.s + 256.0;
  return (std::size_t)std::min(cap, (double)g.HW);
}

float* worker_scratch(std::size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

}  // namespace

bool stream_applies(int64_t H, int64_t W) { return plan_geometry(H, W, g_mode.load()).S != 0; }

void set_kernel_mode(int mode) { g_mode.store(std::min(3, std::max(0, mode))); }
int kernel_mode() { return g_mode.load(); }
StreamStats stream_stats() { return {g_streamed.load(), g_fallbacks.load(), g_missed.load()}; }

bool spectral_qk_stream(const float* pco, const float* pcc, int64_t N, const FilterSpectra& fs,
                        double epsilon, double* pout) {
  const Geometry g = plan_geometry(fs.H, fs.W, g_mode.load());
  if (g.S == 0) return false;
  if (N == 0 || fs.K == 0) return true;
  const std::size_t cap = gather_cap(g);
  const std::size_t per_acc = 2 * (std::size_t)g.s + cap + 16;
  // Filters per item: enough items for every thread; frames per item: within the budget.
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t kb = std::min<int64_t>({fs.K, 4, std::max<int64_t>(1, fs.K / (2 * threads))});
  const int64_t budget = chunk_budget_bytes();
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, budget / (int64_t)(sizeof(float) * per_acc * kb)));
  const int64_t kblocks = (fs.K + kb - 1) / kb, nchunks = (N + chunk - 1) / chunk;
  const int64_t CW = fs.C * fs.Wp;
  at::parallel_for(0, kblocks * nchunks, 1, [&](int64_t b, int64_t e) {
    const std::size_t gfl = fs.full.empty() && fs.C != 3 ? (std::size_t)(kb * 8 * CW) : 0;
    float* base = worker_scratch(gfl + 4 * (size_t)g.W + (size_t)g.s + 16 + (size_t)(chunk * kb) * per_acc);
    float* gbuf = base;
    float* rowbuf = gbuf + gfl;
    float* tmp = rowbuf + 4 * g.W;  // select_ranks' scratch for the sample (s + 1 floats)
    float* accmem = tmp + g.s + 16;
    std::vector<Acc> acc((size_t)(chunk * kb));
    for (std::size_t j = 0; j < acc.size(); ++j) {
      acc[j].so = accmem + j * per_acc;
      acc[j].sc = acc[j].so + g.s;
      acc[j].br.buf = acc[j].sc + g.s;
      acc[j].br.cap = cap;
    }
    std::vector<const float*> rows((size_t)(4 * kb));
    for (int64_t item = b; item < e; ++item) {
      const int64_t ci = item / kblocks, k0 = (item % kblocks) * kb;
      Ctx x{pco, pcc, &fs, g, ci * chunk, std::min(chunk, N - ci * chunk), k0, std::min(kb, fs.K - k0),
            acc.data(), rows.data()};
      stream_item(x, epsilon, gbuf, rowbuf, tmp, pout);
    }
  });
  return true;
}

void spectral_qk_planes(const float* pco, const float* pcc, int64_t N, const FilterSpectra& fs,
                        double epsilon, double* pout) {
  if (spectral_qk_stream(pco, pcc, N, fs, epsilon, pout)) return;
  spectral_qk_planes_exact(pco, pcc, N, fs, epsilon, pout);
}

}  // namespace cpu
}  // namespace dctqa
