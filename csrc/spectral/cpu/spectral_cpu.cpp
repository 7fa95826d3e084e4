// CPU kernel of dctqa::spectral_qk.
//
// For every filter k and every chunk of frames the kernel walks the rows of the
// spectrum in mirrored pairs (u, H-u), builds the filter spectrum G[k, :, u, :] for
// both rows from its separable form (one row costs C*kh*W complex multiply-adds, and
// the mirrored row comes for free), applies it to every frame of the chunk, and keeps
// the magnitudes A^o, A^c of one filter for the chunk only. Then per frame: radix
// selection of the lower median of A^o, eps_k, and the ratio mean.
// Working memory: C*kh*W complex values per filter (Hv) plus, per worker thread,
// 2 * chunk * kb * H * W floats (kb <= 4 filters at a time), where chunk is sized to a
// fixed byte budget: it grows linearly with H*W and not with the number of frames.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <vector>

#include "../../common/checks.h"
#include "../../common/cpu_kernels.h"

namespace dctqa {
namespace {

// Byte budget of the per-worker magnitude buffers (env DCTQA_CPU_CHUNK_MB overrides).
// The buffers are kept per thread between calls (at most this size, or one frame pair's
// planes of one filter when that is larger).
int64_t chunk_budget_bytes() {
  static const int64_t bytes = env_budget_bytes("DCTQA_CPU_CHUNK_MB", 64);
  return bytes;
}

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

at::Tensor spectral_qk_cpu(const at::Tensor& co_in, const at::Tensor& cc_in,
                           const at::Tensor& filters_in, double epsilon) {
  check_spectral_args(co_in, cc_in, filters_in);
  TORCH_CHECK(co_in.device().is_cpu() && filters_in.device().is_cpu(),
              "dctqa: spectral_qk CPU kernel got non-CPU tensors");
  const at::Tensor co = co_in.contiguous();
  const at::Tensor cc = cc_in.contiguous();
  const at::Tensor filt = filters_in.contiguous();
  const int64_t N = co.size(0), C = co.size(1), H = co.size(2), W = co.size(3);
  const int64_t K = filt.size(0), kh = filt.size(2), kw = filt.size(3);
  at::Tensor out = at::empty({N, K}, co.options().dtype(at::kDouble));
  if (N == 0 || K == 0) return out;

  const int Wp = cpu::padded_width((int)W);
  const int64_t HW = H * W;
  const double pi = 3.14159265358979323846;

  // Row phases p_u^i = exp(-i pi u i / H), i < kh (angles reduced exactly mod 2H).
  std::vector<float> pre(H * kh), pim(H * kh);
  for (int64_t u = 0; u < H; ++u)
    for (int64_t i = 0; i < kh; ++i) {
      const double a = pi * (double)((u * i) % (2 * H)) / (double)H;
      pre[u * kh + i] = (float)std::cos(a);
      pim[u * kh + i] = (float)-std::sin(a);
    }

  // Hv[k][c][i][v] = sum_j h[k,c,i,j] exp(-i pi v j / W), in double, stored as float.
  std::vector<double> zr(W * kw), zi(W * kw);
  for (int64_t v = 0; v < W; ++v)
    for (int64_t j = 0; j < kw; ++j) {
      const double a = pi * (double)((v * j) % (2 * W)) / (double)W;
      zr[v * kw + j] = std::cos(a);
      zi[v * kw + j] = -std::sin(a);
    }
  const int64_t hv_per_k = C * kh * Wp;
  std::vector<float> hre(K * hv_per_k, 0.f), him(K * hv_per_k, 0.f);
  const float* h = filt.data_ptr<float>();
  at::parallel_for(0, K * C * kh, 1, [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {  // row = (k*C + c)*kh + i
      const float* hr = h + row * kw;
      float* outr = hre.data() + row * Wp;
      float* outi = him.data() + row * Wp;
      for (int64_t v = 0; v < W; ++v) {
        double sr = 0.0, si = 0.0;
        for (int64_t j = 0; j < kw; ++j) {
          sr += hr[j] * zr[v * kw + j];
          si += hr[j] * zi[v * kw + j];
        }
        outr[v] = (float)sr;
        outi[v] = (float)si;
      }
    }
  });

  // Work item = (block of kb filters, chunk of frames). Within an item the rows are
  // walked once: each pair of filter-spectrum rows is built for the kb filters and
  // applied to every frame of the chunk, so each row of the frames' DCTs is read once
  // per item (it stays in L1 across the kb filters). kb keeps >= 2 items per thread.
  // Frames first (each extra frame in a chunk shares the filter spectra, the largest
  // cost at batch 1), then filters (kb filters share each row of the frames' DCTs).
  const int64_t plane_pair = (int64_t)(2 * sizeof(float)) * HW;
  const int64_t budget = chunk_budget_bytes();
  int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(N, budget / plane_pair));
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  int64_t kb = std::min<int64_t>({K, 4, std::max<int64_t>(1, K / (2 * threads))});
  kb = std::max<int64_t>(1, std::min<int64_t>(kb, budget / (plane_pair * chunk)));
  const int64_t kblocks = (K + kb - 1) / kb;
  const int64_t nchunks = (N + chunk - 1) / chunk;

  const float* pco = co.data_ptr<float>();
  const float* pcc = cc.data_ptr<float>();
  double* pout = out.data_ptr<double>();

  at::parallel_for(0, kblocks * nchunks, 1, [&](int64_t b, int64_t e) {
    // ao/ac: [chunk][kb][HW]; g: [kb][4][C][Wp] (row u re/im, row H-u re/im).
    // Per-thread scratch reused across calls (no page faults on every call); it only
    // grows to the largest chunk used, which the byte budget bounds.
    const size_t plane_floats = (size_t)(chunk * kb * HW);
    float* ao = scratch(0, plane_floats);
    float* ac = scratch(1, plane_floats);
    std::vector<float> g((size_t)(kb * 4 * C * Wp));
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
      for (int64_t u = 0; u <= H / 2; ++u) {
        const int64_t u2 = H - u;
        const bool pair = (u2 < H) && (u2 != u);
        for (int64_t q = 0; q < kn; ++q) {
          float* gq = g.data() + q * 4 * C * Wp;
          cpu::filter_spectrum_rows(hre.data() + (k0 + q) * hv_per_k, him.data() + (k0 + q) * hv_per_k,
                                    pre.data() + u * kh, pim.data() + u * kh, (int)C, (int)kh, Wp,
                                    pair, gq, gq + C * Wp, gq + 2 * C * Wp, gq + 3 * C * Wp);
        }
        for (int64_t t = 0; t < nn; ++t) {
          const float* xo = pco + (n0 + t) * C * HW;
          const float* xc = pcc + (n0 + t) * C * HW;
          for (int64_t q = 0; q < kn; ++q) {
            const float* gq = g.data() + q * 4 * C * Wp;
            float* aoq = ao + (t * kb + q) * HW;
            float* acq = ac + (t * kb + q) * HW;
            float* sq = samples.data() + (t * kb + q) * H * spr;
            cpu::magnitude_row(xo + u * W, HW, gq, gq + C * Wp, (int)C, (int)W, Wp, aoq + u * W);
            take_sample(aoq + u * W, sstep, spr, u, sq + u * spr);
            cpu::magnitude_row(xc + u * W, HW, gq, gq + C * Wp, (int)C, (int)W, Wp, acq + u * W);
            if (pair) {
              cpu::magnitude_row(xo + u2 * W, HW, gq + 2 * C * Wp, gq + 3 * C * Wp, (int)C, (int)W,
                                 Wp, aoq + u2 * W);
              take_sample(aoq + u2 * W, sstep, spr, u2, sq + u2 * spr);
              cpu::magnitude_row(xc + u2 * W, HW, gq + 2 * C * Wp, gq + 3 * C * Wp, (int)C, (int)W,
                                 Wp, acq + u2 * W);
            }
          }
        }
      }
      for (int64_t t = 0; t < nn; ++t) {
        for (int64_t q = 0; q < kn; ++q) {
          const float* a = ao + (t * kb + q) * HW;
          const double m = (double)cpu::select_rank_sampled(
              a, (size_t)HW, (size_t)(HW - 1) / 2, samples.data() + (t * kb + q) * H * spr,
              (size_t)(H * spr));
          const float eps = (float)(epsilon * m + 1e-12);
          pout[(n0 + t) * K + k0 + q] =
              cpu::ratio_sum(a, ac + (t * kb + q) * HW, (size_t)HW, eps) / (double)HW;
        }
      }
    }
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(dctqa, CPU, m) { m.impl("spectral_qk", &spectral_qk_cpu); }

}  // namespace dctqa
