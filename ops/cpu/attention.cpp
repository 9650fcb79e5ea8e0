// Fused scaled-dot-product attention kernels (see attention.h). The math, per head, with
// s_ij = scale q_i . k_j over the visible keys j of query i:
//   forward (online softmax, Milakov & Gimelshein 2018; FlashAttention, Dao et al. 2022): over key
//   blocks, keep per query row the running max m, the running sum l of exp(s - m) and the running
//   output o = sum_j exp(s_ij - m) v_j; a new block with max m' rescales l and o by exp(m - m').
//   At the end out_i = o / l and lse_i = m + log l.
//   backward (FlashAttention-2's, with p recomputed from lse instead of stored):
//     p_ij  = exp(s_ij - lse_i)
//     dv_j  = sum_i p_ij dout_i
//     dp_ij = dout_i . v_j
//     ds_ij = p_ij (dp_ij - D_i),    D_i = sum_j p_ij dp_ij = dout_i . out_i
//     dq_i  = scale sum_j ds_ij k_j,  dk_j = scale sum_i ds_ij q_i
// Inner products run over a key block transposed into a (Dh, kBlockK) buffer, so that one query
// row against 64 keys is a loop over Dh of 64-wide multiply-adds the compiler vectorizes.
#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {

constexpr int64_t kBlockQ = 64;  // query rows per forward work item
constexpr int64_t kBlockK = 64;  // keys per block: the width of the score buffer

// Keys j0 .. j0 + n of head (b, h), transposed into kt (Dh, kBlockK); zero beyond n.
template <class T>
void load_transposed(T* kt, const HeadsView<const T>& k, int64_t b, int64_t h, int64_t j0, int64_t n, int64_t Dh) {
  for (int64_t jj = 0; jj < kBlockK; ++jj) {
    if (jj < n) {
      const T* row = k.row(b, h, j0 + jj);
      for (int64_t d = 0; d < Dh; ++d) kt[d * kBlockK + jj] = row[d];
    } else {
      for (int64_t d = 0; d < Dh; ++d) kt[d * kBlockK + jj] = T(0);
    }
  }
}

// s[jj] = x . kt[:, jj] for the kBlockK keys of the block.   x: (Dh), kt: (Dh, kBlockK)
template <class T>
void row_times_block(T* s, const T* x, const T* kt, int64_t Dh) {
  T acc[kBlockK] = {};
  for (int64_t d = 0; d < Dh; ++d) {
    const T xd = x[d];
    const T* kr = kt + d * kBlockK;
    for (int64_t jj = 0; jj < kBlockK; ++jj) acc[jj] += xd * kr[jj];
  }
  std::copy(acc, acc + kBlockK, s);
}

// How many of the n keys starting at j0 query i sees.
int64_t visible_keys(const AttentionSizes& sz, int64_t i, int64_t j0, int64_t n) {
  if (!sz.causal) return n;
  return std::clamp<int64_t>(i + (sz.Lk - sz.Lq) + 1 - j0, 0, n);
}

// One work item of the forward: query rows [i0, i0 + nq) of head (b, h).
template <class T>
void forward_block(const HeadsView<T>& out, T* lse, const HeadsView<const T>& q, const HeadsView<const T>& k,
                   const HeadsView<const T>& v, const AttentionSizes& sz, int64_t b, int64_t h, int64_t i0,
                   int64_t nq, std::vector<T>& scratch) {
  const int64_t Dh = sz.Dh;
  scratch.assign(Dh * kBlockK + nq * Dh + 2 * nq, T(0));
  T* kt = scratch.data();        // (Dh, kBlockK)
  T* acc = kt + Dh * kBlockK;    // (nq, Dh): the running output o
  T* m = acc + nq * Dh;          // (nq): running max
  T* l = m + nq;                 // (nq): running sum of exp(s - m)
  std::fill(m, m + nq, -std::numeric_limits<T>::infinity());
  const T scale = static_cast<T>(sz.scale);
  // The last key any row of this block sees.
  const int64_t key_end = sz.causal ? std::min(sz.Lk, i0 + nq + (sz.Lk - sz.Lq)) : sz.Lk;
  T s[kBlockK];
  for (int64_t j0 = 0; j0 < key_end; j0 += kBlockK) {
    const int64_t n = std::min(kBlockK, key_end - j0);
    load_transposed(kt, k, b, h, j0, n, Dh);
    for (int64_t r = 0; r < nq; ++r) {
      const int64_t vis = visible_keys(sz, i0 + r, j0, n);
      if (vis == 0) continue;
      row_times_block(s, q.row(b, h, i0 + r), kt, Dh);
      T block_max = -std::numeric_limits<T>::infinity();
      for (int64_t jj = 0; jj < vis; ++jj) {
        s[jj] *= scale;
        block_max = s[jj] > block_max ? s[jj] : block_max;
      }
      const T m_new = std::max(m[r], block_max);
      const T alpha = std::exp(m[r] - m_new);  // 0 at the first block (m = -inf)
      T sum = 0;
      for (int64_t jj = 0; jj < vis; ++jj) {
        s[jj] = fast_exp(s[jj] - m_new);
        sum += s[jj];
      }
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
      T* o = acc + r * Dh;
      if (alpha != T(1))
        for (int64_t d = 0; d < Dh; ++d) o[d] *= alpha;
      for (int64_t jj = 0; jj < vis; ++jj) {
        const T p = s[jj];
        const T* vr = v.row(b, h, j0 + jj);
        for (int64_t d = 0; d < Dh; ++d) o[d] += p * vr[d];
      }
    }
  }
  for (int64_t r = 0; r < nq; ++r) {
    T* dst = out.row(b, h, i0 + r);
    const T inv = T(1) / l[r];
    for (int64_t d = 0; d < Dh; ++d) dst[d] = acc[r * Dh + d] * inv;
    lse[(b * sz.H + h) * sz.Lq + i0 + r] = m[r] + std::log(l[r]);
  }
}

// The backward of one head (b, h): all of its dq, dk and dv rows.
template <class T>
void backward_head(const HeadsView<T>& dq, const HeadsView<T>& dk, const HeadsView<T>& dv,
                   const HeadsView<const T>& dout, const HeadsView<const T>& q, const HeadsView<const T>& k,
                   const HeadsView<const T>& v, const HeadsView<const T>& out, const T* lse, const AttentionSizes& sz,
                   int64_t b, int64_t h) {
  const int64_t Dh = sz.Dh, Lq = sz.Lq, Lk = sz.Lk;
  const T scale = static_cast<T>(sz.scale);
  const T* lse_h = lse + (b * sz.H + h) * Lq;
  std::vector<T> buffer(2 * Dh * kBlockK + 2 * kBlockK * Dh + Lq, T(0));
  T* kt = buffer.data();            // (Dh, kBlockK): the block's keys, transposed
  T* vt = kt + Dh * kBlockK;        // (Dh, kBlockK): its values, transposed
  T* dk_acc = vt + Dh * kBlockK;    // (kBlockK, Dh)
  T* dv_acc = dk_acc + kBlockK * Dh;  // (kBlockK, Dh)
  T* D = dv_acc + kBlockK * Dh;     // (Lq): dout_i . out_i
  for (int64_t i = 0; i < Lq; ++i) {
    const T* g = dout.row(b, h, i);
    const T* o = out.row(b, h, i);
    double dot = 0;
    for (int64_t d = 0; d < Dh; ++d) dot += static_cast<double>(g[d]) * o[d];
    D[i] = static_cast<T>(dot);
    std::fill(dq.row(b, h, i), dq.row(b, h, i) + Dh, T(0));
  }
  T p[kBlockK], dp[kBlockK], ds[kBlockK];
  for (int64_t j0 = 0; j0 < Lk; j0 += kBlockK) {
    const int64_t n = std::min(kBlockK, Lk - j0);
    load_transposed(kt, k, b, h, j0, n, Dh);
    load_transposed(vt, v, b, h, j0, n, Dh);
    std::fill(dk_acc, dk_acc + 2 * kBlockK * Dh, T(0));  // dk_acc and dv_acc
    const int64_t first = sz.causal ? std::max<int64_t>(0, j0 - (Lk - Lq)) : 0;
    for (int64_t i = first; i < Lq; ++i) {
      const int64_t vis = visible_keys(sz, i, j0, n);
      const T* qi = q.row(b, h, i);
      const T* gi = dout.row(b, h, i);
      row_times_block(p, qi, kt, Dh);
      row_times_block(dp, gi, vt, Dh);
      for (int64_t jj = 0; jj < vis; ++jj) {
        p[jj] = fast_exp(scale * p[jj] - lse_h[i]);
        ds[jj] = p[jj] * (dp[jj] - D[i]);
      }
      for (int64_t jj = 0; jj < vis; ++jj) {
        T* dvr = dv_acc + jj * Dh;
        T* dkr = dk_acc + jj * Dh;
        const T pj = p[jj], dsj = ds[jj];
        for (int64_t d = 0; d < Dh; ++d) {
          dvr[d] += pj * gi[d];
          dkr[d] += dsj * qi[d];
        }
      }
      T* dqi = dq.row(b, h, i);
      for (int64_t jj = 0; jj < vis; ++jj) {
        const T c = scale * ds[jj];
        const T* kr = k.row(b, h, j0 + jj);
        for (int64_t d = 0; d < Dh; ++d) dqi[d] += c * kr[d];
      }
    }
    for (int64_t jj = 0; jj < n; ++jj) {
      T* dkr = dk.row(b, h, j0 + jj);
      T* dvr = dv.row(b, h, j0 + jj);
      for (int64_t d = 0; d < Dh; ++d) {
        dkr[d] = scale * dk_acc[jj * Dh + d];
        dvr[d] = dv_acc[jj * Dh + d];
      }
    }
  }
}

}  // namespace

template <class T>
void attention_forward_cpu(const HeadsView<T>& out, T* lse, const HeadsView<const T>& q, const HeadsView<const T>& k,
                           const HeadsView<const T>& v, const AttentionSizes& sz) {
  const int64_t blocks = (sz.Lq + kBlockQ - 1) / kBlockQ;
  const int64_t items = sz.B * sz.H * blocks;
  // Causal blocks late in the sequence cost more: visit a head's blocks as 0, n-1, 1, n-2, ... so
  // that OpenMP's contiguous static split gives every thread a similar share.
  parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / blocks, t = item % blocks;
      const int64_t block = t % 2 == 0 ? t / 2 : blocks - 1 - t / 2;
      const int64_t i0 = block * kBlockQ;
      forward_block(out, lse, q, k, v, sz, bh / sz.H, bh % sz.H, i0, std::min(kBlockQ, sz.Lq - i0), scratch);
    }
  });
}

template <class T>
void attention_backward_cpu(const HeadsView<T>& dq, const HeadsView<T>& dk, const HeadsView<T>& dv,
                            const HeadsView<const T>& dout, const HeadsView<const T>& q, const HeadsView<const T>& k,
                            const HeadsView<const T>& v, const HeadsView<const T>& out, const T* lse,
                            const AttentionSizes& sz) {
  parallel_for(0, sz.B * sz.H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) backward_head(dq, dk, dv, dout, q, k, v, out, lse, sz, bh / sz.H, bh % sz.H);
  });
}

#define MG_INSTANTIATE(T)                                                                                            \
  template void attention_forward_cpu<T>(const HeadsView<T>&, T*, const HeadsView<const T>&, const HeadsView<const T>&, \
                                         const HeadsView<const T>&, const AttentionSizes&);                            \
  template void attention_backward_cpu<T>(const HeadsView<T>&, const HeadsView<T>&, const HeadsView<T>&,               \
                                          const HeadsView<const T>&, const HeadsView<const T>&,                        \
                                          const HeadsView<const T>&, const HeadsView<const T>&,                        \
                                          const HeadsView<const T>&, const T*, const AttentionSizes&);
MG_INSTANTIATE(float)
MG_INSTANTIATE(double)
#undef MG_INSTANTIATE

}  // namespace mg::cpu
