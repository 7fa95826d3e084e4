// The reduction shared by the CPU kernels of every op (ratio sum, exact rank selection for
// the lower median). Plain loops written for the auto-vectoriser, cloned per ISA
// (common/cpu_clones.h); the hand-written x86 bracket passes are in cpu_reduce_x86.cpp,
// reached through the table of common/cpu_features.h.
#include "common/cpu_reduce.h"

#include <cmath>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>
#include "common/cpu_clones.h"
#include "common/cpu_features.h"

namespace dctqa {
namespace cpu {

DCTQA_CLONES
double ratio_excess_sum(const float* ao, const float* ac, std::size_t n, float eps) {
  // 16 independent float lanes (vectorisable without reassociation), each summing at
  // most 64 terms before the lanes are added into a double. Each term is r_j - 1 =
  // (ao - ac) / (ac + eps), exactly 0 where ao == ac (so identical frames give Q = 1
  // exactly, whatever the rounding of the division or of the mean).
  constexpr std::size_t L = 16, B = 64 * L;
  const float* __restrict a = ao;
  const float* __restrict b = ac;
  double total = 0.0;
  std::size_t j0 = 0;
  for (; j0 + B <= n; j0 += B) {
    float lane[L] = {};
    for (std::size_t q = 0; q < B; q += L)
      for (std::size_t t = 0; t < L; ++t)
        lane[t] += (a[j0 + q + t] - b[j0 + q + t]) / (b[j0 + q + t] + eps);
    double s = 0.0;
    for (std::size_t t = 0; t < L; ++t) s += lane[t];
    total += s;
  }
  for (; j0 < n; ++j0) total += (double)((a[j0] - b[j0]) / (b[j0] + eps));
  return total;
}

namespace {
inline uint32_t order_key(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
inline float key_value(uint32_t k) {
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
// Finds the bin holding rank r; r becomes the rank inside that bin.
inline uint32_t find_bin(const uint32_t* hist, int nbins, std::size_t& r) {
  for (int b = 0; b < nbins; ++b) {
    if (r < hist[b]) return (uint32_t)b;
    r -= hist[b];
  }
  return (uint32_t)(nbins - 1);  // unreachable when r < n
}
}  // namespace

float select_rank_radix(const float* x, std::size_t n, std::size_t r) {
  // Three histogram passes over the key bits 31..20, 19..8, 7..0. The first pass uses
  // four interleaved histograms so that runs of equal bins do not serialise.
  std::vector<uint32_t> h(4 * 4096);
  uint32_t* h0 = h.data();
  uint32_t* h1 = h0 + 4096;
  uint32_t* h2 = h1 + 4096;
  uint32_t* h3 = h2 + 4096;
  std::size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    ++h0[order_key(x[j]) >> 20];
    ++h1[order_key(x[j + 1]) >> 20];
    ++h2[order_key(x[j + 2]) >> 20];
    ++h3[order_key(x[j + 3]) >> 20];
  }
  for (; j < n; ++j) ++h0[order_key(x[j]) >> 20];
  for (int b = 0; b < 4096; ++b) h0[b] += h1[b] + h2[b] + h3[b];
  const uint32_t b1 = find_bin(h0, 4096, r);

  std::fill(h1, h1 + 4096, 0u);
  for (j = 0; j < n; ++j) {
    const uint32_t k = order_key(x[j]);
    if ((k >> 20) == b1) ++h1[(k >> 8) & 0xfffu];
  }
  const uint32_t b2 = find_bin(h1, 4096, r);
  const uint32_t prefix = (b1 << 12) | b2;

  std::fill(h2, h2 + 256, 0u);
  for (j = 0; j < n; ++j) {
    const uint32_t k = order_key(x[j]);
    if ((k >> 8) == prefix) ++h2[k & 0xffu];
  }
  const uint32_t b3 = find_bin(h2, 256, r);
  return key_value((prefix << 8) | b3);
}

// below = #{x < lo}; buf[0..cnt) = the x with lo <= x <= hi. buf holds cap + 16 floats.
// Returns false when more than cap elements fall inside (the caller falls back).
// Portable form, in blocks of 16 values. First, for a stretch of blocks, a pass without
// branches counts the values below lo per block (it vectorises) and lists the blocks with a
// value inside; then only the listed blocks (about a third in the streaming kernel) run the
// branch-free compaction. A branch per block, taken at random, would cost more than it saves.
// (The x86 forms: cpu_reduce_x86.cpp; the table in force: cpu_features.h.)
DCTQA_CLONES
bool portable::bracket_pass(const float* x, std::size_t n, float lo, float hi, float* buf,
                            std::size_t cap, std::size_t* below_out, std::size_t* cnt_out) {
  constexpr std::size_t B = 16, kBlocks = 256;
  const float* __restrict v = x;
  std::size_t below = 0, cnt = 0, j0 = 0;
  std::uint32_t listed[kBlocks];
  for (; j0 + B <= n; j0 += B * kBlocks) {
    const std::size_t nb = std::min(kBlocks, (n - j0) / B);
    std::size_t m = 0;
    for (std::size_t b = 0; b < nb; ++b) {
      const float* p = v + j0 + b * B;
      unsigned lt = 0, in = 0;
      for (std::size_t t = 0; t < B; ++t) {
        lt += p[t] < lo;
        in += (p[t] >= lo) & (p[t] <= hi);
      }
      below += lt;
      listed[m] = (std::uint32_t)b;
      m += in != 0;
    }
    for (std::size_t i = 0; i < m; ++i) {
      const float* p = v + j0 + listed[i] * B;
      for (std::size_t t = 0; t < B; ++t) {
        buf[cnt] = p[t];  // kept only when inside (no branch); cnt <= cap + 15
        cnt += (p[t] >= lo) & (p[t] <= hi);
      }
      if (cnt > cap) return false;
    }
  }
  const std::size_t tail = n / B * B;
  for (std::size_t j = tail; j < n; ++j) {
    const float e = v[j];
    below += (e < lo);
    buf[cnt] = e;  // cnt <= cap
    cnt += (e >= lo) & (e <= hi);
    if (cnt > cap) return false;
  }
  *below_out = below;
  *cnt_out = cnt;
  return true;
}

bool bracket_count_gather(const float* x, std::size_t n, float lo, float hi, float* buf,
                          std::size_t cap, std::size_t* below, std::size_t* cnt) {
  if (*cnt >= cap) return false;
  std::size_t b = 0, c = 0;
  if (!cpu_kernels().bracket_pass(x, n, lo, hi, buf + *cnt, cap - *cnt, &b, &c)) return false;
  *below += b;
  *cnt += c;
  return true;
}

namespace {
DCTQA_CLONES
void key_range(const float* x, std::size_t n, std::uint32_t* lo, std::uint32_t* hi) {
  std::uint32_t a = 0xFFFFFFFFu, b = 0;
  for (std::size_t j = 0; j < n; ++j) {
    const std::uint32_t k = order_key(x[j]);
    a = k < a ? k : a;
    b = k > b ? k : b;
  }
  *lo = a, *hi = b;
}
}  // namespace

void select_ranks(const float* x, std::size_t n, const std::size_t* r, int m, float* out, float* scratch) {
  constexpr int kBins = 4096;
  std::uint32_t kmin, kmax;
  key_range(x, n, &kmin, &kmax);
  if (kmin == kmax) {  // all equal
    for (int i = 0; i < m; ++i) out[i] = x[0];
    return;
  }
  const std::uint32_t span = kmax - kmin;
  const int width = 32 - __builtin_clz(span);  // bits of span, >= 1
  const int shift = width > 12 ? width - 12 : 0;
  std::uint32_t hist[kBins];
  const std::size_t nbins = (std::size_t)(span >> shift) + 1;
  std::fill(hist, hist + nbins, 0u);
  for (std::size_t j = 0; j < n; ++j) ++hist[(order_key(x[j]) - kmin) >> shift];
  // The bin of each rank and the count before it.
  std::size_t bin[4], before[4];
  for (int i = 0; i < m; ++i) {
    std::size_t b = 0, c = 0;
    while (c + hist[b] <= r[i]) c += hist[b++];
    bin[i] = b, before[i] = c;
  }
  // Gather each needed bin once into scratch (consecutive segments), select inside it.
  std::size_t seg_off[4], seg_len[4], off = 0;
  for (int i = 0; i < m; ++i) {
    int j = 0;
    while (j < i && bin[j] != bin[i]) ++j;
    if (j < i) {
      seg_off[i] = seg_off[j], seg_len[i] = seg_len[j];
    } else {
      const std::uint32_t want = (std::uint32_t)bin[i];
      float* dst = scratch + off;
      std::size_t len = 0;
      for (std::size_t q = 0; q < n; ++q) {  // branch-free compaction (dst may trail x when m == 1)
        const float v = x[q];
        dst[len] = v;
        len += ((order_key(v) - kmin) >> shift) == want;
      }
      seg_off[i] = off, seg_len[i] = len;
      off += len;
    }
    float* seg = scratch + seg_off[i];
    const std::size_t k = r[i] - before[i];
    std::nth_element(seg, seg + k, seg + seg_len[i]);
    out[i] = seg[k];
  }
}

namespace {
// select_ranks for one rank on a copy of x (small inputs).
float select_rank_copy(const float* x, std::size_t n, std::size_t r) {
  std::vector<float> buf(x, x + n);
  buf.push_back(0.f);  // select_ranks' room for n + 1
  float v;
  select_ranks(buf.data(), n, &r, 1, &v, buf.data());
  return v;
}
}  // namespace

float select_rank(const float* x, std::size_t n, std::size_t r) {
  if (n <= 8192) return select_rank_copy(x, n, r);
  const std::size_t s = 8192;
  std::vector<float> sample(s);
  for (std::size_t j = 0; j < s; ++j) sample[j] = x[(j * n) / s + (j * 7919u) % (n / s)];
  return select_rank_sampled(x, n, r, sample.data(), s);
}

float select_rank_sampled(const float* x, std::size_t n, std::size_t r, float* sample_ptr,
                          std::size_t s) {
  if (n <= 8192 || s < 64) return select_rank_copy(x, n, r);
  // Large inputs: bracket rank r between two quantiles of a fixed strided sample
  // (four standard deviations of the sample rank either side), then one pass counts
  // the elements below the bracket and gathers those inside it, and select_ranks on
  // the few gathered ones gives the exact value. A bracket that misses (very rare)
  // falls back to radix selection, so the result is exact in every case.
  const double q = (double)r * (double)s / (double)n;
  const double d = 4.0 * std::sqrt(q * (1.0 - q / (double)s)) + 2.0;
  const long lo_i = (long)std::floor(q - d), hi_i = (long)std::ceil(q + d);
  const bool has_lo = lo_i >= 0, has_hi = hi_i < (long)s;
  if (!has_lo && !has_hi) return select_rank_radix(x, n, r);
  std::size_t ranks[2];
  float vals[2];
  int m = 0;
  if (has_lo) ranks[m++] = (std::size_t)lo_i;
  if (has_hi) ranks[m++] = (std::size_t)hi_i;
  std::vector<float> scratch(s + 1);
  select_ranks(sample_ptr, s, ranks, m, vals, scratch.data());
  // Branch-free pass: count the elements below the bracket, gather those inside it.
  const float lo_eff = has_lo ? vals[0] : -INFINITY;
  const float hi_eff = has_hi ? vals[m - 1] : INFINITY;
  const std::size_t cap =
      (std::size_t)(3.0 * (double)(hi_i - lo_i + 1) * (double)n / (double)s) + 256;
  std::vector<float> inside(cap + 16);
  std::size_t below = 0, cnt = 0;
  const bool overflow = !cpu_kernels().bracket_pass(x, n, lo_eff, hi_eff, inside.data(), cap, &below, &cnt);
  if (!overflow && below <= r && r < below + cnt) {
    const std::size_t k = r - below;
    float v;
    select_ranks(inside.data(), cnt, &k, 1, &v, inside.data());  // in place: room cap + 16
    return v;
  }
  return select_rank_radix(x, n, r);
}

}  // namespace cpu
}  // namespace dctqa
