// The spectral-domain kernel on channel DCTs and the cache of filter spectra.
//
// For every block of filters and every chunk of frames the kernel walks the rows of the
// spectrum in mirrored pairs (u, H-u), builds the filter spectrum G[k, :, u, :] for
// both rows from its separable form (one row costs C*kh*W complex multiply-adds, and
// the mirrored row comes for free), applies it to every frame of the chunk, and keeps
// the magnitudes A^o, A^c of the block for the chunk only. Then per frame: selection of
// the lower median of A^o, eps_k, and the ratio mean.
// Working memory per worker thread: 2 * chunk * kb * H * W floats (kb <= 4 filters at a
// time), chunk sized to a fixed byte budget: it does not grow with the number of frames.
#include "spectral_qk/cpu/spectral_core.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>

#include "common/control.h"
#include "common/constants.h"
#include "common/cpu_reduce.h"
#include "spectral_qk/cpu/spectral_rows.h"

namespace dctqa {
namespace cpu {

std::size_t FilterSpectra::nbytes() const {
  return sizeof(float) *
         (filters.size() + pre.size() + pim.size() + hre.size() + him.size() + full.size());
}

namespace {

constexpr double kPi = 3.14159265358979323846;

}  // namespace

// G rows of filter k for row pair (u, H-u) and, when `two`, (u+1, H-u-1), written to
// rows[0..3] (u re, u im, H-u re, H-u im) and rows[4..7]; rows that do not exist (u = 0,
// u = H/2) are written to wherever those pointers point.
void spectrum_rows(const FilterSpectra& fs, int64_t k, int64_t u, bool two, float* const* rows) {
  const int64_t C = fs.C, H = fs.H, kh = fs.kh, Wp = fs.Wp, hv = C * kh * Wp;
  const float* hre = fs.hre.data() + k * hv;
  const float* him = fs.him.data() + k * hv;
  const bool pair0 = (H - u < H) && (H - u != u);
  if (!two) {
    filter_spectrum_rows(hre, him, fs.pre.data() + u * kh, fs.pim.data() + u * kh, (int)C, (int)kh,
                         (int)Wp, pair0, rows[0], rows[1], rows[2], rows[3]);
    return;
  }
  const bool pair1 = (H - u - 1 < H) && (H - u - 1 != u + 1);
  filter_spectrum_rows2(hre, him, fs.pre.data() + u * kh, fs.pim.data() + u * kh,
                        fs.pre.data() + (u + 1) * kh, fs.pim.data() + (u + 1) * kh, (int)C, (int)kh,
                        (int)Wp, pair0, pair1, rows);
}

namespace {

// Fills fs.full from the factors: row pairs (u, H-u), (u+1, H-u-1) of a filter at a time.
void build_full(FilterSpectra& fs) {
  const int64_t K = fs.K, C = fs.C, H = fs.H, Wp = fs.Wp;
  const int64_t row = 2 * C * Wp, blocks = H / 4 + 1;  // u = 0, 2, 4, ... <= H/2
  fs.full.assign((size_t)(K * H * row), 0.f);
  at::parallel_for(0, K * blocks, 1, [&](int64_t b, int64_t e) {
    std::vector<float> spare((size_t)row);  // target of rows that do not exist
    for (int64_t item = b; item < e; ++item) {
      const int64_t k = item / blocks, u = 2 * (item % blocks);
      if (u > H / 2) continue;
      const bool two = u + 1 <= H / 2;
      float* at[8];
      for (int s = 0; s < (two ? 2 : 1); ++s) {
        const int64_t ua = u + s, ub = H - ua;
        float* ga = fs.full.data() + (k * H + ua) * row;
        float* gb = (ub < H && ub != ua) ? fs.full.data() + (k * H + ub) * row : spare.data();
        at[4 * s] = ga, at[4 * s + 1] = ga + C * Wp, at[4 * s + 2] = gb, at[4 * s + 3] = gb + C * Wp;
      }
      spectrum_rows(fs, k, u, two, at);
    }
  });
}

std::shared_ptr<FilterSpectra> build_spectra(const float* h, int64_t K, int64_t C, int64_t kh,
                                             int64_t kw, int64_t H, int64_t W, bool with_full) {
  auto fs = std::make_shared<FilterSpectra>();
  fs->K = K, fs->C = C, fs->kh = kh, fs->kw = kw, fs->H = H, fs->W = W;
  fs->Wp = padded_width((int)W);
  const int64_t Wp = fs->Wp;
  fs->filters.assign(h, h + K * C * kh * kw);
  // Row phases p_u^i = exp(-i pi u i / H), i < kh (angles reduced exactly mod 2H).
  fs->pre.resize(H * kh);
  fs->pim.resize(H * kh);
  for (int64_t u = 0; u < H; ++u)
    for (int64_t i = 0; i < kh; ++i) {
      const double a = kPi * (double)((u * i) % (2 * H)) / (double)H;
      fs->pre[u * kh + i] = (float)std::cos(a);
      fs->pim[u * kh + i] = (float)-std::sin(a);
    }
  // Hv[k][c][i][v] = sum_j h[k,c,i,j] exp(-i pi v j / W), in double, stored as float.
  std::vector<double> zr(W * kw), zi(W * kw);
  for (int64_t v = 0; v < W; ++v)
    for (int64_t j = 0; j < kw; ++j) {
      const double a = kPi * (double)((v * j) % (2 * W)) / (double)W;
      zr[v * kw + j] = std::cos(a);
      zi[v * kw + j] = -std::sin(a);
    }
  fs->hre.assign(K * C * kh * Wp, 0.f);
  fs->him.assign(K * C * kh * Wp, 0.f);
  float* hre = fs->hre.data();
  float* him = fs->him.data();
  at::parallel_for(0, K * C * kh, 1, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {  // row = (k*C + c)*kh + i
      const float* hr = h + row * kw;
      for (int64_t v = 0; v < W; ++v) {
        double sr = 0.0, si = 0.0;
        for (int64_t j = 0; j < kw; ++j) {
          sr += hr[j] * zr[v * kw + j];
          si += hr[j] * zi[v * kw + j];
        }
        hre[row * Wp + v] = (float)sr;
        him[row * Wp + v] = (float)si;
      }
    }
  });
  if (with_full) build_full(*fs);
  return fs;
}

// LRU of spectra keyed by (filter bank, H, W), bounded in bytes (DCTQA_SPECTRA_CACHE_MB,
// default 1024 MiB, handed over by dctqa.settings through _C.configure). The one cache of
// filter spectra in dctqa. Lookups compare the bank itself, not a hash of it.
struct SpectraCache {
  std::mutex mu;
  std::list<std::shared_ptr<const FilterSpectra>> items;  // most recent first
  int64_t bytes = 0, hits = 0, misses = 0;
  int64_t max_bytes = int64_t(1024) << 20;

  void evict_to(int64_t bound) {  // caller holds mu
    while (bytes > bound && !items.empty()) {
      bytes -= (int64_t)items.back()->nbytes();
      items.pop_back();
    }
  }
};

SpectraCache& cache() {
  static SpectraCache* c = new SpectraCache();  // never destroyed: safe at exit
  return *c;
}

bool same_key(const FilterSpectra& e, const float* h, int64_t K, int64_t C, int64_t kh,
              int64_t kw, int64_t H, int64_t W) {
  return e.K == K && e.C == C && e.kh == kh && e.kw == kw && e.H == H && e.W == W &&
         std::memcmp(e.filters.data(), h, sizeof(float) * K * C * kh * kw) == 0;
}

}  // namespace

std::shared_ptr<const FilterSpectra> filter_spectra(const float* h, int64_t K, int64_t C,
                                                    int64_t kh, int64_t kw, int64_t H, int64_t W) {
  SpectraCache& sc = cache();
  {
    std::lock_guard<std::mutex> lock(sc.mu);
    for (auto it = sc.items.begin(); it != sc.items.end(); ++it) {
      if (same_key(**it, h, K, C, kh, kw, H, W)) {
        ++sc.hits;
        sc.items.splice(sc.items.begin(), sc.items, it);
        return sc.items.front();
      }
    }
    ++sc.misses;
  }
  // Built outside the lock (two threads may build the same entry; one is kept).
  const bool full_allowed = kernel_config().full_spectra;
  const int64_t full_bytes = (int64_t)sizeof(float) * K * H * 2 * C * padded_width((int)W);
  int64_t max_bytes;
  {
    std::lock_guard<std::mutex> lock(sc.mu);
    max_bytes = sc.max_bytes;
  }
  // The streaming kernel builds G in registers for C = 3 and never reads the whole G.
  const bool want_full = full_allowed && full_bytes <= max_bytes / 4 && !(C == 3 && stream_applies(H, W));
  std::shared_ptr<const FilterSpectra> fs = build_spectra(h, K, C, kh, kw, H, W, want_full);
  std::lock_guard<std::mutex> lock(sc.mu);
  if ((int64_t)fs->nbytes() > sc.max_bytes) return fs;
  for (const auto& e : sc.items)
    if (same_key(*e, h, K, C, kh, kw, H, W)) return e;
  sc.items.push_front(fs);
  sc.bytes += (int64_t)fs->nbytes();
  sc.evict_to(sc.max_bytes);
  return fs;
}

SpectraCacheStats spectra_cache_stats() {
  SpectraCache& sc = cache();
  std::lock_guard<std::mutex> lock(sc.mu);
  return {sc.bytes, (int64_t)sc.items.size(), sc.hits, sc.misses, sc.max_bytes};
}

void spectra_cache_clear() {
  SpectraCache& sc = cache();
  std::lock_guard<std::mutex> lock(sc.mu);
  sc.items.clear();
  sc.bytes = sc.hits = sc.misses = 0;
}

void spectra_cache_set_max_bytes(int64_t max_bytes) {
  SpectraCache& sc = cache();
  std::lock_guard<std::mutex> lock(sc.mu);
  sc.max_bytes = std::max<int64_t>(0, max_bytes);
  sc.evict_to(sc.max_bytes);
}

int64_t chunk_budget_bytes() { return kernel_config().cpu_chunk_bytes; }

namespace {

// Thread-local scratch buffer `slot`, at least n floats, contents undefined.
float* scratch(int slot, size_t n) {
  thread_local std::unique_ptr<float[]> buf[2];
  thread_local size_t cap[2] = {0, 0};
  if (cap[slot] < n) {
    buf[slot].reset();
    buf[slot].reset(new float[n]);
    cap[slot] = n;
  }
  return buf[slot].get();
}

// About this many A^o values per plane are sampled for the median's bracket.
constexpr int64_t kSampleTarget = 8192;

inline void take_sample(const float* row, int64_t step, int64_t count, int64_t u, float* out) {
  const int64_t off = step > 1 ? (u * 7919) % step : 0;
  for (int64_t j = 0; j < count; ++j) out[j] = row[j * step + off];
}

// Work split: (block of kb filters, chunk of frames) items.
struct Split {
  int64_t chunk, kb, kblocks, nchunks;
};

Split plan_split(int64_t N, int64_t K, int64_t HW) {
  // Frames first (each extra frame in a chunk shares the filter spectra, the largest
  // cost at batch 1), then filters (kb filters share each row of the frames' DCTs).
  const int64_t plane_pair = (int64_t)(2 * sizeof(float)) * HW;
  const int64_t budget = chunk_budget_bytes();
  Split s;
  s.chunk = std::max<int64_t>(1, std::min<int64_t>(N, budget / plane_pair));
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  s.kb = std::min<int64_t>({K, 4, std::max<int64_t>(1, K / (2 * threads))});
  s.kb = std::max<int64_t>(1, std::min<int64_t>(s.kb, budget / (plane_pair * s.chunk)));
  s.kblocks = (K + s.kb - 1) / s.kb;
  s.nchunks = (N + s.chunk - 1) / s.chunk;
  return s;
}

// What the magnitude pass of one work item needs.
struct PlaneCtx {
  const float *pco, *pcc;
  int64_t n0, nn, kn, kb, H, W, C, Wp, spr, sstep;
  float *ao, *ac, *samples;
  const float* const* rows;  // per filter: rows u, H-u, u+1, H-u-1 (re; im C*Wp later)
};

// A^o, A^c of rows u and H-u (slot s of `rows`) for every frame and filter of the item,
// and the sample of A^o.
void pair_magnitudes(const PlaneCtx& c, int64_t u, int s) {
  const int64_t u2 = c.H - u, HW = c.H * c.W, CW = c.C * c.Wp;
  const bool pair = (u2 < c.H) && (u2 != u);
  const int C = (int)c.C, W = (int)c.W, Wp = (int)c.Wp;
  for (int64_t t = 0; t < c.nn; ++t) {
    const float* xo = c.pco + (c.n0 + t) * c.C * HW;
    const float* xc = c.pcc + (c.n0 + t) * c.C * HW;
    for (int64_t q = 0; q < c.kn; ++q) {
      const float* gq = c.rows[q * 4 + 2 * s];
      const float* gq2 = c.rows[q * 4 + 2 * s + 1];
      float* aoq = c.ao + (t * c.kb + q) * HW;
      float* acq = c.ac + (t * c.kb + q) * HW;
      float* sq = c.samples + (t * c.kb + q) * c.H * c.spr;
      magnitude_row(xo + u * W, HW, gq, gq + CW, C, W, Wp, aoq + u * W);
      take_sample(aoq + u * W, c.sstep, c.spr, u, sq + u * c.spr);
      magnitude_row(xc + u * W, HW, gq, gq + CW, C, W, Wp, acq + u * W);
      if (pair) {
        magnitude_row(xo + u2 * W, HW, gq2, gq2 + CW, C, W, Wp, aoq + u2 * W);
        take_sample(aoq + u2 * W, c.sstep, c.spr, u2, sq + u2 * c.spr);
        magnitude_row(xc + u2 * W, HW, gq2, gq2 + CW, C, W, Wp, acq + u2 * W);
      }
    }
  }
}

}  // namespace

void spectral_qk_planes_exact(const float* pco, const float* pcc, int64_t N, const FilterSpectra& fs,
                              double epsilon, double* pout) {
  const int64_t C = fs.C, H = fs.H, W = fs.W, K = fs.K;
  const int Wp = fs.Wp;
  const int64_t HW = H * W;
  if (N == 0 || K == 0) return;
  const Split sp = plan_split(N, K, HW);
  const int64_t chunk = sp.chunk, kb = sp.kb, kblocks = sp.kblocks;

  at::parallel_for(0, kblocks * sp.nchunks, 1, [&](int64_t b, int64_t e) {
    // ao/ac: [chunk][kb][HW]; g: [kb][4][C][Wp] (row u re/im, row H-u re/im).
    // Per-thread scratch reused across calls (no page faults on every call); it only
    // grows to the largest chunk used, which the byte budget bounds.
    const size_t plane_floats = (size_t)(chunk * kb * HW);
    float* ao = scratch(0, plane_floats);
    float* ac = scratch(1, plane_floats);
    std::vector<float> g(fs.full.empty() ? (size_t)(kb * 8 * C * Wp) : 0);
    std::vector<const float*> rows((size_t)(4 * kb));  // G rows u, H-u, u+1, H-u-1 per filter
    // Per plane, a sample of A^o taken while its rows are hot in L1 (for the median's
    // bracket): spr values from each row, evenly spread, with a row-dependent offset.
    const int64_t spr = std::min<int64_t>(W, (kSampleTarget + H - 1) / H);
    const int64_t sstep = W / spr;
    std::vector<float> samples((size_t)(chunk * kb * H * spr));
    for (int64_t item = b; item < e; ++item) {
      const int64_t ci = item / kblocks, k0 = (item % kblocks) * kb;
      const int64_t kn = std::min(kb, K - k0);
      const int64_t n0 = ci * chunk;
      const int64_t nn = std::min(chunk, N - n0);
      const PlaneCtx ctx{pco, pcc, n0, nn, kn, kb, H, W, C, Wp, spr, sstep, ao, ac, samples.data(), rows.data()};
      for (int64_t u = 0; u <= H / 2; u += 2) {
        const bool two = u + 1 <= H / 2;
        for (int64_t q = 0; q < kn; ++q) {
          const float** rq = rows.data() + q * 4;  // rows u, H-u, u+1, H-u-1
          for (int s = 0; s < (two ? 2 : 1); ++s) {
            const int64_t ua = u + s, ub = H - ua;
            if (!fs.full.empty()) {  // rows of the cached G
              rq[2 * s] = fs.full.data() + ((k0 + q) * H + ua) * 2 * C * Wp;
              rq[2 * s + 1] = (ub < H && ub != ua) ? fs.full.data() + ((k0 + q) * H + ub) * 2 * C * Wp : nullptr;
            } else {
              rq[2 * s] = g.data() + (q * 8 + 4 * s) * C * Wp;
              rq[2 * s + 1] = rq[2 * s] + 2 * C * Wp;
            }
          }
          if (fs.full.empty()) {
            float* gq = g.data() + q * 8 * C * Wp;
            float* at[8];
            for (int j = 0; j < 8; ++j) at[j] = gq + j * C * Wp;
            spectrum_rows(fs, k0 + q, u, two, at);
          }
        }
        for (int s = 0; s < (two ? 2 : 1); ++s) pair_magnitudes(ctx, u + s, s);
      }
      for (int64_t t = 0; t < nn; ++t) {
        for (int64_t q = 0; q < kn; ++q) {
          const float* a = ao + (t * kb + q) * HW;
          const double m = (double)select_rank_sampled(
              a, (size_t)HW, (size_t)(HW - 1) / 2, samples.data() + (t * kb + q) * H * spr,
              (size_t)(H * spr));
          const float eps = (float)(epsilon * m + kAbsFloor);
          pout[(n0 + t) * K + k0 + q] =
              1.0 + ratio_excess_sum(a, ac + (t * kb + q) * HW, (size_t)HW, eps) / (double)HW;
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace dctqa
