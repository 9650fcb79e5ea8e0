#pragma once
// The CPU kernel of the fused Mamba LM step (ops/mamba_step.h has the op, its math and its checks):
// the whole model at one position, straight over the weights' and the states' memory, with every
// intermediate in one caller-owned workspace. Raw, contiguous, row-major pointers.
#include <cstdint>
#include <vector>

namespace mg::cpu {

// One residual block's parameters and state (optional ones nullptr).
template <class T>
struct MambaStepLayerPointers {
  const T* norm_weight;   // (d_model)
  double norm_eps;
  const T* in_weight;     // (2 d_inner, d_model)
  const T* in_bias;       // (2 d_inner) or null
  const T* conv_weight;   // (d_inner, 1, d_conv)
  const T* conv_bias;     // (d_inner) or null
  const T* x_weight;      // (dt_rank + 2 N, d_inner)
  const T* dt_weight;     // (d_inner, dt_rank)
  const T* dt_bias;       // (d_inner)
  const T* A;             // (d_inner, N)
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
inline constexpr int64_t kMambaStepChannelBlock = 128;

// Sizes of one step.
struct MambaStepSizes {
  int64_t batch, d_model, d_inner, d_state, d_conv, dt_rank, vocab;
  int64_t x_dbl() const { return dt_rank + 2 * d_state; }
  int64_t blocks() const { return (d_inner + kMambaStepChannelBlock - 1) / kMambaStepChannelBlock; }
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

// The threads the step uses now: at most one per channel block, and 1 inside a caller's parallel
// region (the step then runs serially on the calling thread).
int64_t mamba_step_threads(const MambaStepSizes& sizes);

// tokens (B), each in [0, vocab) -> logits (B, vocab), advancing every layer's conv and SSM state
// in place. embeddings (vocab, d_model) is also the head; norm_f (d_model). workspace holds
// sizes.workspace_numel(threads) values, threads as mamba_step_threads returned.
template <class T>
void mamba_step_cpu(const int64_t* tokens, const T* embeddings, const std::vector<MambaStepLayerPointers<T>>& layers,
                    const T* norm_f, double norm_f_eps, const MambaStepSizes& sizes, int64_t threads, T* workspace,
                    T* logits);

}  // namespace mg::cpu
