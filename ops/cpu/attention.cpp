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
//
// Every product is one shape, C (rows, 64) += A (rows, K) B (K, 64), with the block's 64 keys or
// 64 queries along the vector dimension (block_product below): the head size Dh (often 28 or 64)
// is only ever a loop count, never a vector width. So the blocks are kept transposed where that
// puts 64 along the rows: K^T and V^T (Dh, 64), the output o^T (Dh, 64 queries), dk^T and dv^T
// (Dh, 64), dq^T (Dh, Lq).
#include "ops/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {

constexpr int64_t kBlock = 64;  // queries per block and keys per block
constexpr int64_t kFewRows = 8;  // fewer query rows than this take the row-by-row forward

// 64 bytes of T: one AVX-512 register (two AVX2 ones elsewhere).
template <class T> struct Vec64;
template <> struct Vec64<float> { typedef float type __attribute__((vector_size(64))); };
template <> struct Vec64<double> { typedef double type __attribute__((vector_size(64))); };

// C (rows, 64) = or += A (rows, K) B (K, 64), where A(r, k) = a[r * a_row + k * a_k] (any strides:
// a row-major block, a transposed one, a strided view of the caller's tensor), B has rows of 64
// contiguous elements, and C's rows are ldc apart. R rows of C stay in registers while k runs.
template <int R, class T>
inline void block_product_rows(T* c, int64_t ldc, const T* a, int64_t a_row, int64_t a_k, const T* b, int64_t K,
                               bool accumulate) {
  using V = typename Vec64<T>::type;
  constexpr int kVecs = kBlock * sizeof(T) / 64;  // vectors per row of 64
  V acc[R][kVecs];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVecs; ++v) {
      if (accumulate) std::memcpy(&acc[r][v], c + r * ldc + v * (64 / sizeof(T)), 64);
      else acc[r][v] = V{};
    }
  for (int64_t k = 0; k < K; ++k) {
    V brow[kVecs];
    std::memcpy(brow, b + k * kBlock, sizeof brow);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const T x = a[r * a_row + k * a_k];
#pragma GCC unroll 8
      for (int v = 0; v < kVecs; ++v) acc[r][v] += x * brow[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < kVecs; ++v) std::memcpy(c + r * ldc + v * (64 / sizeof(T)), &acc[r][v], 64);
}

template <class T>
void block_product(T* c, int64_t ldc, const T* a, int64_t a_row, int64_t a_k, const T* b, int64_t rows, int64_t K,
                   bool accumulate) {
  constexpr int kRows = sizeof(T) == 4 ? 4 : 2;  // 16 accumulator registers either way
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows)
    block_product_rows<kRows>(c + r * ldc, ldc, a + r * a_row, a_row, a_k, b, K, accumulate);
  for (; r < rows; ++r) block_product_rows<1>(c + r * ldc, ldc, a + r * a_row, a_row, a_k, b, K, accumulate);
}

// Keys j0 .. j0 + n of head (b, h), transposed into kt (Dh, 64); zero beyond n.
template <class T>
void load_transposed(T* kt, const HeadsView<const T>& k, int64_t b, int64_t h, int64_t j0, int64_t n, int64_t Dh) {
  for (int64_t jj = 0; jj < kBlock; ++jj) {
    const T* row = jj < n ? k.row(b, h, j0 + jj) : nullptr;
    for (int64_t d = 0; d < Dh; ++d) kt[d * kBlock + jj] = row ? row[d] : T(0);
  }
}

// dst (64, 64) = src^T for src (rows, 64); dst's columns >= rows are zero.
template <class T>
void transpose_block(T* dst, const T* src, int64_t rows) {
  for (int64_t j = 0; j < kBlock; ++j)
    for (int64_t r = 0; r < kBlock; ++r) dst[j * kBlock + r] = r < rows ? src[r * kBlock + j] : T(0);
}

// How many of the n keys starting at j0 query i sees.
int64_t visible_keys(const AttentionSizes& sz, int64_t i, int64_t j0, int64_t n) {
  if (!sz.causal) return n;
  return std::clamp<int64_t>(i + (sz.Lk - sz.Lq) + 1 - j0, 0, n);
}

// x . y over n elements, in 8 interleaved partial sums (a fixed order that vectorizes).
template <class T>
T dot(const T* x, const T* y, int64_t n) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += x[i + k] * y[i + k];
  T total = 0;
  for (int k = 0; k < 8; ++k) total += lanes[k];
  for (; i < n; ++i) total += x[i] * y[i];
  return total;
}

// The forward of a few query rows [i0, i0 + nq) of head (b, h) (generation: one new token against
// a KV cache), row by row over the keys in their own layout. The blocked path below would spend
// a 64-query-wide product and two transposes per key block on a single row.
template <class T>
void forward_rows(const HeadsView<T>& out, T* lse, const HeadsView<const T>& q, const HeadsView<const T>& k,
                  const HeadsView<const T>& v, const AttentionSizes& sz, int64_t b, int64_t h, int64_t i0, int64_t nq,
                  std::vector<T>& scratch) {
  const int64_t Dh = sz.Dh;
  scratch.assign(sz.Lk + Dh, T(0));
  T* p = scratch.data();   // (Lk): scores, then exp(s - m)
  T* o = p + sz.Lk;        // (Dh)
  const T scale = static_cast<T>(sz.scale);
  for (int64_t i = i0; i < i0 + nq; ++i) {
    const int64_t vis = visible_keys(sz, i, 0, sz.Lk);
    const T* qi = q.row(b, h, i);
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t j = 0; j < vis; ++j) {
      p[j] = scale * dot(qi, k.row(b, h, j), Dh);
      m = std::max(m, p[j]);
    }
    T l = 0;
    for (int64_t j = 0; j < vis; ++j) {
      p[j] = fast_exp(p[j] - m);
      l += p[j];
    }
    std::fill(o, o + Dh, T(0));
    for (int64_t j = 0; j < vis; ++j) {
      const T* vj = v.row(b, h, j);
      for (int64_t d = 0; d < Dh; ++d) o[d] += p[j] * vj[d];
    }
    T* dst = out.row(b, h, i);
    for (int64_t d = 0; d < Dh; ++d) dst[d] = o[d] / l;
    lse[(b * sz.H + h) * sz.Lq + i] = m + std::log(l);
  }
}

// One work item of the forward: query rows [i0, i0 + nq) of head (b, h), nq <= 64.
template <class T>
void forward_block(const HeadsView<T>& out, T* lse, const HeadsView<const T>& q, const HeadsView<const T>& k,
                   const HeadsView<const T>& v, const AttentionSizes& sz, int64_t b, int64_t h, int64_t i0,
                   int64_t nq, std::vector<T>& scratch) {
  if (nq < kFewRows) return forward_rows(out, lse, q, k, v, sz, b, h, i0, nq, scratch);
  const int64_t Dh = sz.Dh;
  scratch.assign(3 * Dh * kBlock + 2 * kBlock * kBlock + 3 * kBlock, T(0));
  T* kt = scratch.data();          // (Dh, 64): the key block, transposed
  T* ot = kt + Dh * kBlock;        // (Dh, 64 queries): the running output o, transposed
  T* s = ot + Dh * kBlock;         // (64 queries, 64 keys): scores, then p
  T* pt = s + kBlock * kBlock;     // (64 keys, 64 queries): p transposed
  T* m = pt + kBlock * kBlock;     // (64): running max
  T* l = m + kBlock;               // (64): running sum of exp(s - m)
  T* alpha = l + kBlock;           // (64): this block's rescaling exp(m_old - m_new)
  std::fill(m, m + kBlock, -std::numeric_limits<T>::infinity());
  std::fill(alpha, alpha + kBlock, T(1));
  const T scale = static_cast<T>(sz.scale);
  const int64_t key_end = sz.causal ? std::min(sz.Lk, i0 + nq + (sz.Lk - sz.Lq)) : sz.Lk;  // past every row's last key
  for (int64_t j0 = 0; j0 < key_end; j0 += kBlock) {
    const int64_t n = std::min(kBlock, key_end - j0);
    load_transposed(kt, k, b, h, j0, n, Dh);
    block_product(s, kBlock, q.row(b, h, i0), q.stride_l, 1, kt, nq, Dh, false);  // s = q k^T: (nq, 64)
    for (int64_t r = 0; r < nq; ++r) {
      T* row = s + r * kBlock;
      const int64_t vis = visible_keys(sz, i0 + r, j0, n);
      T block_max = -std::numeric_limits<T>::infinity();
      for (int64_t jj = 0; jj < vis; ++jj) block_max = std::max(block_max, row[jj] * scale);
      const T m_new = std::max(m[r], block_max);
      alpha[r] = vis == 0 ? T(1) : std::exp(m[r] - m_new);  // 0 at the first block (m = -inf)
      T sum = 0;
      for (int64_t jj = 0; jj < kBlock; ++jj) {
        const T p = jj < vis ? fast_exp(row[jj] * scale - m_new) : T(0);
        row[jj] = p;
        sum += p;
      }
      if (vis > 0) m[r] = m_new;
      l[r] = l[r] * alpha[r] + sum;
    }
    transpose_block(pt, s, nq);
    for (int64_t d = 0; d < Dh; ++d)
      for (int64_t r = 0; r < kBlock; ++r) ot[d * kBlock + r] *= alpha[r];
    // o^T (Dh, 64 queries) += v^T (Dh, n) p^T (n, 64 queries); v^T(d, j) = v[j0 + j][d]
    block_product(ot, kBlock, v.row(b, h, j0), 1, v.stride_l, pt, Dh, n, true);
  }
  for (int64_t r = 0; r < nq; ++r) {
    T* dst = out.row(b, h, i0 + r);
    const T inv = T(1) / l[r];
    for (int64_t d = 0; d < Dh; ++d) dst[d] = ot[d * kBlock + r] * inv;
    lse[(b * sz.H + h) * sz.Lq + i0 + r] = m[r] + std::log(l[r]);
  }
}

// The backward of one head (b, h): all of its dq, dk and dv rows. Key blocks outside, query
// blocks inside: dk and dv of a key block are finished before the next; dq^T accumulates over
// key blocks in order.
template <class T>
void backward_head(const HeadsView<T>& dq, const HeadsView<T>& dk, const HeadsView<T>& dv,
                   const HeadsView<const T>& dout, const HeadsView<const T>& q, const HeadsView<const T>& k,
                   const HeadsView<const T>& v, const HeadsView<const T>& out, const T* lse, const AttentionSizes& sz,
                   int64_t b, int64_t h) {
  const int64_t Dh = sz.Dh, Lq = sz.Lq, Lk = sz.Lk;
  const int64_t dq_cols = Lq + kBlock;  // room for a last block that starts anywhere
  const T scale = static_cast<T>(sz.scale);
  const T* lse_h = lse + (b * sz.H + h) * Lq;
  std::vector<T> buffer(4 * Dh * kBlock + 3 * kBlock * kBlock + Dh * dq_cols + Lq, T(0));
  T* kt = buffer.data();                 // (Dh, 64): the key block, transposed
  T* vt = kt + Dh * kBlock;              // (Dh, 64): its values, transposed
  T* dkt = vt + Dh * kBlock;             // (Dh, 64): dk of the block, transposed (without the scale)
  T* dvt = dkt + Dh * kBlock;            // (Dh, 64): dv of the block, transposed
  T* p = dvt + Dh * kBlock;              // (64 queries, 64 keys)
  T* ds = p + kBlock * kBlock;           // (64 queries, 64 keys): dp, then ds
  T* dst = ds + kBlock * kBlock;         // (64 keys, 64 queries): ds transposed
  T* dqt = dst + kBlock * kBlock;        // (Dh, dq_cols): dq transposed (without the scale)
  T* D = dqt + Dh * dq_cols;             // (Lq): dout_i . out_i
  for (int64_t i = 0; i < Lq; ++i) {
    const T* g = dout.row(b, h, i);
    const T* o = out.row(b, h, i);
    double dot = 0;
    for (int64_t d = 0; d < Dh; ++d) dot += static_cast<double>(g[d]) * o[d];
    D[i] = static_cast<T>(dot);
  }
  for (int64_t j0 = 0; j0 < Lk; j0 += kBlock) {
    const int64_t n = std::min(kBlock, Lk - j0);
    load_transposed(kt, k, b, h, j0, n, Dh);
    load_transposed(vt, v, b, h, j0, n, Dh);
    std::fill(dkt, dkt + 2 * Dh * kBlock, T(0));  // dkt and dvt
    const int64_t first = sz.causal ? std::max<int64_t>(0, j0 - (Lk - Lq)) : 0;  // the first query that sees j0
    for (int64_t i0 = first; i0 < Lq; i0 += kBlock) {
      const int64_t nq = std::min(kBlock, Lq - i0);
      block_product(p, kBlock, q.row(b, h, i0), q.stride_l, 1, kt, nq, Dh, false);       // s = q k^T
      block_product(ds, kBlock, dout.row(b, h, i0), dout.stride_l, 1, vt, nq, Dh, false);  // dp = dout v^T
      for (int64_t r = 0; r < nq; ++r) {
        const int64_t vis = visible_keys(sz, i0 + r, j0, n);
        const T lse_i = lse_h[i0 + r], D_i = D[i0 + r];
        T* pr = p + r * kBlock;
        T* dsr = ds + r * kBlock;
        for (int64_t jj = 0; jj < kBlock; ++jj) {
          const T pij = jj < vis ? fast_exp(pr[jj] * scale - lse_i) : T(0);
          pr[jj] = pij;
          dsr[jj] = pij * (dsr[jj] - D_i);
        }
      }
      // dv^T (Dh, 64) += dout^T (Dh, nq) p (nq, 64);  dk^T (Dh, 64) += q^T (Dh, nq) ds (nq, 64)
      block_product(dvt, kBlock, dout.row(b, h, i0), 1, dout.stride_l, p, Dh, nq, true);
      block_product(dkt, kBlock, q.row(b, h, i0), 1, q.stride_l, ds, Dh, nq, true);
      // dq^T (Dh, 64 queries at i0) += k^T (Dh, n) ds^T (n, 64)
      transpose_block(dst, ds, nq);
      block_product(dqt + i0, dq_cols, kt, kBlock, 1, dst, Dh, n, true);
    }
    for (int64_t jj = 0; jj < n; ++jj) {
      T* dkr = dk.row(b, h, j0 + jj);
      T* dvr = dv.row(b, h, j0 + jj);
      for (int64_t d = 0; d < Dh; ++d) {
        dkr[d] = scale * dkt[d * kBlock + jj];
        dvr[d] = dvt[d * kBlock + jj];
      }
    }
  }
  for (int64_t i = 0; i < Lq; ++i) {
    T* dqi = dq.row(b, h, i);
    for (int64_t d = 0; d < Dh; ++d) dqi[d] = scale * dqt[d * dq_cols + i];
  }
}

}  // namespace

template <class T>
void attention_forward_cpu(const HeadsView<T>& out, T* lse, const HeadsView<const T>& q, const HeadsView<const T>& k,
                           const HeadsView<const T>& v, const AttentionSizes& sz) {
  const int64_t blocks = (sz.Lq + kBlock - 1) / kBlock;
  const int64_t items = sz.B * sz.H * blocks;
  // Causal blocks late in the sequence cost more: visit a head's blocks as 0, n-1, 1, n-2, ... so
  // that OpenMP's contiguous static split gives every thread a similar share.
  parallel_for(0, items, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t bh = item / blocks, t = item % blocks;
      const int64_t block = t % 2 == 0 ? t / 2 : blocks - 1 - t / 2;
      const int64_t i0 = block * kBlock;
      forward_block(out, lse, q, k, v, sz, bh / sz.H, bh % sz.H, i0, std::min(kBlock, sz.Lq - i0), scratch);
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
