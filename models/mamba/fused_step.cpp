#include "models/mamba/fused_step.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "autograd/grad_mode.h"
#include "models/mamba/model.h"
#include "ops/cpu/fast_math.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/parallel.h"
#include "ops/cpu/rms_norm.h"
#include "ops/cpu/selective_scan_step.h"
#include "ops/ops.h"
#include "tensor/factory.h"

namespace mg::mamba {

namespace {

// One layer's parameters and state as raw pointers (optional ones nullptr).
template <class T>
struct LayerPointers {
  const T* norm_weight;   // (d_model)
  const T* in_weight;     // (2 d_inner, d_model)
  const T* in_bias;       // (2 d_inner) or null
  const T* conv_weight;   // (d_inner, 1, d_conv)
  const T* conv_bias;     // (d_inner) or null
  const T* x_weight;      // (dt_rank + 2 N, d_inner)
  const T* dt_weight;     // (d_inner, dt_rank)
  const T* dt_bias;       // (d_inner)
  const T* A;             // (d_inner, N): -exp(A_log), cached in the state
  const T* D;             // (d_inner)
  const T* out_weight;    // (d_model, d_inner)
  const T* out_bias;      // (d_model) or null
  T* conv_state;          // (B, d_inner, d_conv), oldest input first
  T* ssm_state;           // (B, d_inner, N)
};

// d_inner's channels are processed in fixed blocks. Threads split the work by whole blocks, and
// each sum over channels (x_proj's and out_proj's products) is formed per block, the partial sums
// then added in block order: the logits do not depend on the thread count. A thread keeps the
// same blocks at every step, so it reads the same slices of every weight matrix: at 2 threads
// each core's L2 (1 MiB here) holds its half of the default model's 1.9 MB of weights, instead of
// one core streaming all of them from L3 for every token.
constexpr int64_t kChannelBlock = 128;
// The head's vocabulary rows are computed in chunks of this many (split across threads).
constexpr int64_t kHeadChunk = 512;

// Sizes of one step.
struct StepSizes {
  int64_t batch, d_model, d_inner, d_state, d_conv, dt_rank;
  int64_t x_dbl() const { return dt_rank + 2 * d_state; }
  int64_t blocks() const { return (d_inner + kChannelBlock - 1) / kChannelBlock; }
  // Every buffer, and every block's partial sums, is rounded up to 16 values (64 bytes in float):
  // each starts on a cache line of its own, so two threads' partials never share one. (Unpadded,
  // two blocks' x_proj partials shared a line, and its ping-pong made the 2-thread step up to 2x
  // slower, depending on where the heap put things.)
  static int64_t round_up(int64_t n) { return (n + 15) / 16 * 16; }
  int64_t x_partial_stride() const { return round_up(batch * x_dbl()); }    // one block's (B, x_dbl)
  int64_t out_partial_stride() const { return round_up(batch * d_model); }  // one block's (B, d_model)
  // Shared: xz (B, 2 d_inner); u, delta, z, y (B, d_inner); x_partial, out_partial (one per block).
  int64_t shared_numel() const {
    return round_up(batch * 2 * d_inner) + 4 * round_up(batch * d_inner) +
           blocks() * (x_partial_stride() + out_partial_stride());
  }
  // Per thread: h, normed (B, d_model); rstd (B); x_dbl (B, x_dbl); Bm, Cm (B, N).
  int64_t private_numel() const {
    return 2 * round_up(batch * d_model) + round_up(batch) + round_up(batch * x_dbl()) + 2 * round_up(batch * d_state);
  }
  int64_t workspace_numel(int64_t threads) const { return shared_numel() + threads * private_numel(); }
};

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
void carve_workspace(T* base, const StepSizes& s, int64_t thread, Shared<T>& shared, Private<T>& own) {
  auto take = [&](int64_t values) { T* p = base; base += StepSizes::round_up(values); return p; };
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
  const cpu::StridedMatrix<T> input{x, rows, in_features, x_stride, 1};
  const cpu::StridedMatrix<T> weight_t{weight, in_features, out_features, 1, weight_stride};
  cpu::gemm_cpu(out, input, weight_t, false, out_stride);
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
void conv_step_silu(const LayerPointers<T>& layer, const StepSizes& s, const Shared<T>& sh, int64_t c0, int64_t nc) {
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
    for (int64_t c = c0; c < c0 + nc; ++c) u[c] = cpu::fast_silu(u[c]);  // vectorizes across channels
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
void block_step(const LayerPointers<T>& layer, const StepSizes& s, double eps, const Shared<T>& sh,
                const Private<T>& own, int64_t team, int64_t k0, int64_t k1) {
  const int64_t B = s.batch, dm = s.d_model, Di = s.d_inner, N = s.d_state, R = s.dt_rank, X = s.x_dbl();
  auto channels = [&](int64_t k) { return std::pair{k * kChannelBlock, std::min(kChannelBlock, Di - k * kChannelBlock)}; };
  rms_norm_forward_cpu(own.normed, own.rstd, own.h, layer.norm_weight, B, dm, eps);
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
  cpu::ScanInputs<T> in;
  in.size = {.batch = B, .dim = Di, .dstate = N, .seqlen = 1, .groups = 1};
  in.u = sh.u, in.delta = sh.delta, in.A = layer.A, in.Bm = own.Bm, in.Cm = own.Cm;
  in.D_skip = layer.D, in.z = sh.z, in.delta_bias = layer.dt_bias, in.delta_softplus = true;
  for (int64_t k = k0; k < k1; ++k) {
    const auto [c0, nc] = channels(k);
    linear_into(sh.delta + c0, Di, own.x_dbl, B, R, X, layer.dt_weight + c0 * R, R, nc,
                static_cast<const T*>(nullptr));  // dt_proj without its bias: that goes into the scan
    for (int64_t b = 0; b < B; ++b) std::copy_n(sh.xz + b * 2 * Di + Di + c0, nc, sh.z + b * Di + c0);
    cpu::selective_scan_step_channels_cpu(in, sh.y, layer.ssm_state, c0, c0 + nc);
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

template <class T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
LayerPointers<T> layer_pointers(const ResidualBlock& block, MixerState& state) {
  const MambaMixer& mixer = *block.mixer;
  return {.norm_weight = block.norm->weight.data<T>(),
          .in_weight = mixer.in_proj->weight.data<T>(),
          .in_bias = optional_data<T>(mixer.in_proj->bias),
          .conv_weight = mixer.conv1d->weight.data<T>(),
          .conv_bias = optional_data<T>(mixer.conv1d->bias),
          .x_weight = mixer.x_proj->weight.data<T>(),
          .dt_weight = mixer.dt_proj->weight.data<T>(),
          .dt_bias = mixer.dt_proj->bias.data<T>(),
          .A = state.A.data<T>(),
          .D = mixer.D.data<T>(),
          .out_weight = mixer.out_proj->weight.data<T>(),
          .out_bias = optional_data<T>(mixer.out_proj->bias),
          .conv_state = state.conv_state.data<T>(),
          .ssm_state = state.ssm_state.data<T>()};
}

// The whole model at one position, by up to `threads` threads (1: no parallel region). The team
// OpenMP actually forms may be smaller (OMP_DYNAMIC, OMP_THREAD_LIMIT): blocks are split by its size.
template <class T>
void model_step(const MambaLM& model, const int64_t* tokens, InferenceState& state, const StepSizes& s,
                int64_t threads, T* logits) {
  const MambaBackbone& backbone = *model.backbone;
  const T* embeddings = backbone.embeddings->weight.data<T>();
  // Everything the threads read is gathered here: nothing inside the parallel region may throw.
  std::vector<LayerPointers<T>> layers;
  std::vector<double> eps;
  for (size_t i = 0; i < backbone.layers->size(); ++i) {
    const ResidualBlock& block = *backbone.layers->at<ResidualBlock>(i);
    layers.push_back(layer_pointers<T>(block, state.layers[i]));
    eps.push_back(block.norm->eps);
  }
  T* workspace = state.workspace.data<T>();
  const T* norm_f = backbone.norm_f->weight.data<T>();
  const double norm_f_eps = backbone.norm_f->eps;
  const int64_t vocab = backbone.embeddings->num_embeddings;
  const int64_t head_chunks = (vocab + kHeadChunk - 1) / kHeadChunk;
  auto run = [&](int64_t thread, int64_t team) {
    Shared<T> shared;
    Private<T> own;
    carve_workspace(workspace, s, thread, shared, own);
    const int64_t k0 = s.blocks() * thread / team, k1 = s.blocks() * (thread + 1) / team;
    for (int64_t b = 0; b < s.batch; ++b) std::copy_n(embeddings + tokens[b] * s.d_model, s.d_model, own.h + b * s.d_model);
    for (size_t i = 0; i < layers.size(); ++i)
      block_step(layers[i], s, eps[i], shared, own, team, k0, k1);
    // The head, tied to the embedding: every thread has the whole residual stream, so each one
    // normalizes it and computes its share of the vocabulary's rows (the largest matrix of a big
    // model: 154 MB of mamba-130m's 516). Rows go in fixed chunks, whatever the team's size.
    rms_norm_forward_cpu(own.normed, own.rstd, own.h, norm_f, s.batch, s.d_model, norm_f_eps);
    for (int64_t c = head_chunks * thread / team; c < head_chunks * (thread + 1) / team; ++c) {
      const int64_t r0 = c * kHeadChunk, nr = std::min(kHeadChunk, vocab - r0);
      linear_into(logits + r0, vocab, own.normed, s.batch, s.d_model, s.d_model, embeddings + r0 * s.d_model,
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

bool usable(const Tensor& t, DType dtype) {
  return !t.defined() || (t.device().is_cpu() && t.dtype() == dtype && t.is_contiguous());
}

}  // namespace

bool fused_step_supported(const MambaLM& model, const InferenceState& state) {
  const MambaBackbone& backbone = *model.backbone;
  const DType dtype = backbone.embeddings->weight.dtype();
  if (dtype != DType::Float32 && dtype != DType::Float64) return false;
  if (!usable(backbone.embeddings->weight, dtype) || !usable(backbone.norm_f->weight, dtype)) return false;
  if (state.layers.size() != backbone.layers->size()) return false;
  for (size_t i = 0; i < state.layers.size(); ++i) {  // the tensors model_step reads, layer by layer
    const ResidualBlock& block = *backbone.layers->at<ResidualBlock>(i);
    const MambaMixer& m = *block.mixer;
    const MixerState& layer = state.layers[i];
    if (!layer.conv_state.defined() || !layer.ssm_state.defined()) return false;
    if (!m.dt_proj->bias.defined() || m.x_proj->bias.defined()) return false;  // the kernel assumes the mixer's biases
    const std::initializer_list<const Tensor*> read = {
        &block.norm->weight, &m.in_proj->weight, &m.in_proj->bias, &m.conv1d->weight, &m.conv1d->bias,
        &m.x_proj->weight,   &m.dt_proj->weight, &m.dt_proj->bias, &m.A_log,          &m.D,
        &m.out_proj->weight, &m.out_proj->bias,  &layer.conv_state, &layer.ssm_state, &layer.A};
    for (const Tensor* t : read)
      if (!usable(*t, dtype)) return false;
  }
  return true;
}

Tensor fused_step(const MambaLM& model, const Tensor& tokens, InferenceState& state) {
  NoGradGuard no_grad;
  MG_CHECK(fused_step_supported(model, state),
           "fused_step: every parameter and state tensor must be a contiguous CPU tensor of the model's floating "
           "dtype, with one state per layer (MambaLM::step checks this and falls back to the composed step)");
  MG_CHECK(tokens.dim() == 1 && tokens.dtype() == DType::Int64 && tokens.device().is_cpu(),
           "MambaLM.step: expected int64 CPU tokens (B), got ", tokens.shape(), " ", tokens.dtype(), " on ",
           tokens.device());
  const MambaMixer& first = *model.backbone->layers->at<ResidualBlock>(0)->mixer;
  const StepSizes s{tokens.size(0), first.d_model, first.d_inner, first.d_state, first.d_conv, first.dt_rank};
  const Shape conv_shape{s.batch, s.d_inner, s.d_conv}, ssm_shape{s.batch, s.d_inner, s.d_state};
  for (const MixerState& layer : state.layers)
    MG_CHECK(layer.conv_state.shape() == conv_shape && layer.ssm_state.shape() == ssm_shape,
             "MambaLM.step: tokens ", tokens.shape(), " need states ", conv_shape, " (conv) and ", ssm_shape,
             " (ssm), got ", layer.conv_state.shape(), " and ", layer.ssm_state.shape());
  const Tensor ids = tokens.contiguous();
  const int64_t vocab = model.backbone->embeddings->num_embeddings;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t id = ids.data<int64_t>()[b];
    MG_CHECK(id >= 0 && id < vocab, "MambaLM.step: token ", id, " at position ", b, " is outside the vocabulary [0, ",
             vocab, ")");
  }

  const DType dtype = model.backbone->embeddings->weight.dtype();
  const TensorOptions options{.dtype = dtype};
  for (size_t i = 0; i < state.layers.size(); ++i)  // A = -exp(A_log): once per generation, not per token
    if (!state.layers[i].A.defined() || state.layers[i].A.shape() != Shape({s.d_inner, s.d_state})) {
      const MambaMixer& mixer = *model.backbone->layers->at<ResidualBlock>(i)->mixer;
      state.layers[i].A = neg(exp(mixer.A_log)).contiguous();
    }
  // At most one thread per channel block; inside a parallel region the step runs serially.
  const int64_t threads = omp_in_parallel() ? 1 : std::clamp<int64_t>(get_num_threads(), 1, s.blocks());
  const int64_t workspace_numel = s.workspace_numel(threads);
  if (!state.workspace.defined() || state.workspace.numel() != workspace_numel || state.workspace.dtype() != dtype)
    state.workspace = empty({workspace_numel}, options);
  Tensor logits = empty({s.batch, vocab}, options);
  dispatch_floating(dtype, "MambaLM.step", [&]<class T>() {
    model_step<T>(model, ids.data<int64_t>(), state, s, threads, logits.data<T>());
  });
  return logits;
}

}  // namespace mg::mamba
