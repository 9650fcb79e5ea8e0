// The fused Mamba LM step on the CPU (ops/mamba_step.h says what it computes and why it is fused).
#include "ops/cpu/mamba_step.h"

#include <algorithm>
#include <utility>

#include "ops/cpu/fast_math.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/rms_norm.h"
#include "ops/cpu/selective_scan_step.h"

namespace mg::cpu {

namespace {

// The head's vocabulary rows are computed in chunks of this many (split across threads).
constexpr int64_t kHeadChunk = 512;

// What every thread reads: written by the thread owning a block, read by the others after a barrier.
template <class T>
struct Shared {
  T *xz, *u, *delta, *z, *y, *x_partial, *out_partial;
};
// Each thread's own copy of what every block needs: the residual stream h and the per-token
// vectors computed from it. The copies are computed identically, so they hold the same values.
template <class T>
struct Private {
  T *h, *normed, *rstd, *x_dbl, *Bm, *Cm;
};

template <class T>
void carve_workspace(T* base, const MambaStepSizes& s, int64_t thread, Shared<T>& shared, Private<T>& own) {
  auto take = [&](int64_t values) { T* p = base; base += MambaStepSizes::round_up(values); return p; };
  T* const start = base;
  const int64_t B = s.batch;
  shared = {take(B * 2 * s.d_inner), take(B * s.d_inner), take(B * s.d_inner), take(B * s.d_inner),
            take(B * s.d_inner),     take(s.blocks() * s.x_partial_stride()), take(s.blocks() * s.out_partial_stride())};
  base = start + s.shared_numel() + thread * s.private_numel();
  own = {take(B * s.d_model), take(B * s.d_model), take(B), take(B * s.x_dbl()), take(B * s.d_state), take(B * s.d_state)};
}

// out (rows, out_features; row stride out_stride) = x (rows, in_features; row stride x_stride)
// @ weight^T (+ bias), where weight (out_features, in_features) has rows weight_stride apart: a
// slice of nn::Linear on raw memory.
template <class T>
void linear_into(T* out, int64_t out_stride, const T* x, int64_t rows, int64_t in_features, int64_t x_stride,
                 const T* weight, int64_t weight_stride, int64_t out_features, const T* bias) {
  const StridedMatrix<T> input{x, rows, in_features, x_stride, 1};
  const StridedMatrix<T> weight_t{weight, in_features, out_features, 1, weight_stride};
  gemm_cpu(out, input, weight_t, false, out_stride);
  if (bias)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < out_features; ++j) out[r * out_stride + j] += bias[j];
}

// sum (n) = the blocks' partials (n values each, `stride` apart) added in block order.
template <class T>
void sum_partials(T* sum, const T* partials, int64_t blocks, int64_t n, int64_t stride) {
  std::copy_n(partials, n, sum);
  for (int64_t k = 1; k < blocks; ++k)
    for (int64_t i = 0; i < n; ++i) sum[i] += partials[k * stride + i];
}

// The causal depthwise conv's step and the SiLU after it, for channels [c0, c0 + nc): shift each
// window one input left, append x (the x half of xz), u = silu(bias + <weight, window>).
template <class T>
void conv_step_silu(const MambaStepLayerPointers<T>& layer, const MambaStepSizes& s, const Shared<T>& sh, int64_t c0, int64_t nc) {
  const int64_t K = s.d_conv;
  for (int64_t b = 0; b < s.batch; ++b) {
    T* u = sh.u + b * s.d_inner;
    for (int64_t c = c0; c < c0 + nc; ++c) {
      T* window = layer.conv_state + (b * s.d_inner + c) * K;
      const T* w = layer.conv_weight + c * K;
      for (int64_t k = 0; k + 1 < K; ++k) window[k] = window[k + 1];
      window[K - 1] = sh.xz[b * 2 * s.d_inner + c];
      T acc = layer.conv_bias ? layer.conv_bias[c] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += w[k] * window[k];
      u[c] = acc;
    }
    for (int64_t c = c0; c < c0 + nc; ++c) u[c] = fast_silu(u[c]);  // vectorizes across channels
  }
}

// Waits for the rest of a team of `team` threads. Alone (team 1) it must not wait at all: called
// from inside a caller's own parallel region, an OpenMP barrier would bind to the caller's team
// and hang if its threads made different numbers of steps.
inline void team_barrier(int64_t team) {
  if (team > 1) {
#pragma omp barrier
  }
}

// One residual block at one position, h (B, d_model) += mixer(RMSNorm(h)), by one thread of a
// team of `team` for its blocks [k0, k1). Two barriers: x_proj's and out_proj's sums need every block.
template <class T>
void block_step(const MambaStepLayerPointers<T>& layer, const MambaStepSizes& s, const Shared<T>& sh,
                const Private<T>& own, int64_t team, int64_t k0, int64_t k1) {
  const int64_t B = s.batch, dm = s.d_model, Di = s.d_inner, N = s.d_state, R = s.dt_rank, X = s.x_dbl();
  constexpr int64_t kBlock = kMambaStepChannelBlock;
  auto channels = [&](int64_t k) { return std::pair{k * kBlock, std::min(kBlock, Di - k * kBlock)}; };
  rms_norm_forward_cpu(own.normed, own.rstd, own.h, layer.norm_weight, B, dm, layer.norm_eps);
  for (int64_t k = k0; k < k1; ++k) {
    const auto [c0, nc] = channels(k);
    const T* in_bias = layer.in_bias;
    linear_into(sh.xz + c0, 2 * Di, own.normed, B, dm, dm, layer.in_weight + c0 * dm, dm, nc,
                in_bias ? in_bias + c0 : in_bias);  // x
    linear_into(sh.xz + Di + c0, 2 * Di, own.normed, B, dm, dm, layer.in_weight + (Di + c0) * dm, dm, nc,
                in_bias ? in_bias + Di + c0 : in_bias);  // z
    conv_step_silu(layer, s, sh, c0, nc);
    linear_into(sh.x_partial + k * s.x_partial_stride(), X, sh.u + c0, B, nc, Di, layer.x_weight + c0, Di, X,
                static_cast<const T*>(nullptr));  // x_proj over this block's channels
  }
  team_barrier(team);
  sum_partials(own.x_dbl, sh.x_partial, s.blocks(), B * X, s.x_partial_stride());  // dt | B | C
  for (int64_t b = 0; b < B; ++b) {                          // the scan step reads B and C as rows
    std::copy_n(own.x_dbl + b * X + R, N, own.Bm + b * N);
    std::copy_n(own.x_dbl + b * X + R + N, N, own.Cm + b * N);
  }
  ScanInputs<T> in;
  in.size = {.batch = B, .dim = Di, .dstate = N, .seqlen = 1, .groups = 1};
  in.u = sh.u, in.delta = sh.delta, in.A = layer.A, in.Bm = own.Bm, in.Cm = own.Cm;
  in.D_skip = layer.D, in.z = sh.z, in.delta_bias = layer.dt_bias, in.delta_softplus = true;
  for (int64_t k = k0; k < k1; ++k) {
    const auto [c0, nc] = channels(k);
    linear_into(sh.delta + c0, Di, own.x_dbl, B, R, X, layer.dt_weight + c0 * R, R, nc,
                static_cast<const T*>(nullptr));  // dt_proj without its bias: that goes into the scan
    for (int64_t b = 0; b < B; ++b) std::copy_n(sh.xz + b * 2 * Di + Di + c0, nc, sh.z + b * Di + c0);
    selective_scan_step_channels_cpu(in, sh.y, layer.ssm_state, c0, c0 + nc);
    linear_into(sh.out_partial + k * s.out_partial_stride(), dm, sh.y + c0, B, nc, Di, layer.out_weight + c0, Di, dm,
                static_cast<const T*>(nullptr));  // out_proj over this block's channels
  }
  team_barrier(team);
  for (int64_t b = 0; b < B; ++b) {  // the residual add, out_proj's bias last
    T* h = own.h + b * dm;
    for (int64_t k = 0; k < s.blocks(); ++k)
      for (int64_t j = 0; j < dm; ++j) h[j] += sh.out_partial[k * s.out_partial_stride() + b * dm + j];
    if (layer.out_bias)
      for (int64_t j = 0; j < dm; ++j) h[j] += layer.out_bias[j];
  }
}

}  // namespace

int64_t mamba_step_threads(const MambaStepSizes& s) {
  return omp_in_parallel() ? 1 : std::clamp<int64_t>(get_num_threads(), 1, s.blocks());
}

// The whole model at one position, by up to `threads` threads (1: no parallel region). The team
// OpenMP actually forms may be smaller (OMP_DYNAMIC, OMP_THREAD_LIMIT): blocks are split by its size.
// Nothing inside the parallel region may throw: the op has checked everything before.
template <class T>
void mamba_step_cpu(const int64_t* tokens, const T* embeddings, const std::vector<MambaStepLayerPointers<T>>& layers,
                    const T* norm_f, double norm_f_eps, const MambaStepSizes& s, int64_t threads, T* workspace,
                    T* logits) {
  const int64_t head_chunks = (s.vocab + kHeadChunk - 1) / kHeadChunk;
  auto run = [&](int64_t thread, int64_t team) {
    Shared<T> shared;
    Private<T> own;
    carve_workspace(workspace, s, thread, shared, own);
    const int64_t k0 = s.blocks() * thread / team, k1 = s.blocks() * (thread + 1) / team;
    for (int64_t b = 0; b < s.batch; ++b) std::copy_n(embeddings + tokens[b] * s.d_model, s.d_model, own.h + b * s.d_model);
    for (const MambaStepLayerPointers<T>& layer : layers) block_step(layer, s, shared, own, team, k0, k1);
    // The head, tied to the embedding: every thread has the whole residual stream, so each one
    // normalizes it and computes its share of the vocabulary's rows (the largest matrix of a big
    // model: 154 MB of mamba-130m's 516). Rows go in fixed chunks, whatever the team's size.
    rms_norm_forward_cpu(own.normed, own.rstd, own.h, norm_f, s.batch, s.d_model, norm_f_eps);
    for (int64_t c = head_chunks * thread / team; c < head_chunks * (thread + 1) / team; ++c) {
      const int64_t r0 = c * kHeadChunk, nr = std::min(kHeadChunk, s.vocab - r0);
      linear_into(logits + r0, s.vocab, own.normed, s.batch, s.d_model, s.d_model, embeddings + r0 * s.d_model,
                  s.d_model, nr, static_cast<const T*>(nullptr));
    }
  };
  if (threads == 1) {
    run(0, 1);
  } else {
#pragma omp parallel num_threads(threads)
    run(omp_get_thread_num(), omp_get_num_threads());
  }
}

template void mamba_step_cpu<float>(const int64_t*, const float*, const std::vector<MambaStepLayerPointers<float>>&,
                                    const float*, double, const MambaStepSizes&, int64_t, float*, float*);
template void mamba_step_cpu<double>(const int64_t*, const double*, const std::vector<MambaStepLayerPointers<double>>&,
                                     const double*, double, const MambaStepSizes&, int64_t, double*, double*);

}  // namespace mg::cpu
