#pragma once
// The Mamba mixer (Gu & Dao 2023, Figure 3 and Algorithm 2), as the official Mamba module:
//   in_proj (d_model -> 2 d_inner, split x | z) -> causal depthwise conv1d (width d_conv) -> SiLU
//   -> x_proj (d_inner -> dt_rank + 2 N, split dt | B | C) -> dt_proj (dt_rank -> d_inner)
//   -> selective scan (delta = softplus(dt + dt_proj.bias), A = -exp(A_log), D skip, silu(z) gate)
//   -> out_proj (d_inner -> d_model)
// Parameter names and shapes are those of the official checkpoints.
#include "models/mamba/config.h"
#include "nn/conv1d.h"
#include "nn/linear.h"

namespace mg::mamba {

// The recurrent state of one mixer, for generation: O(1) in the sequence length.
struct MixerState {
  Tensor conv_state{};  // (B, d_inner, d_conv): the last d_conv inputs of the conv, oldest first
  Tensor ssm_state{};   // (B, d_inner, N): h after the last step
  Tensor A{};           // (d_inner, N): -exp(A_log), computed at the first step of a generation
};

class MambaMixer : public nn::Module {
 public:
  MambaMixer(const MambaConfig& config, Generator& gen);

  // hidden: (B, L, d_model) -> (B, L, d_model). With `state`, also leaves there the states after
  // the last step (to continue recurrently from a prompt).
  Tensor forward(const Tensor& hidden, MixerState* state = nullptr);
  // One token: hidden (B, d_model) -> (B, d_model), advancing `state` in place. No autograd.
  Tensor step(const Tensor& hidden, MixerState& state);
  MixerState new_state(int64_t batch) const;

  const int64_t d_model, d_inner, d_state, d_conv, dt_rank;
  std::shared_ptr<nn::Linear> in_proj, x_proj, dt_proj, out_proj;
  std::shared_ptr<nn::CausalConv1d> conv1d;
  Tensor A_log;  // (d_inner, N): A = -exp(A_log), kept in log space so A stays negative
  Tensor D;      // (d_inner): the skip connection y += D * u

 private:
  void init_parameters(const MambaConfig& config, Generator& gen);
};

}  // namespace mg::mamba
