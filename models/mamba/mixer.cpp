#include "models/mamba/mixer.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "ops/ops.h"
#include "ops/selective_scan.h"
#include "tensor/factory.h"

namespace mg::mamba {

MambaMixer::MambaMixer(const MambaConfig& config, Generator& gen)
    : nn::Module("MambaMixer"),
      d_model(config.d_model),
      d_inner(config.d_inner()),
      d_state(config.d_state),
      d_conv(config.d_conv),
      dt_rank(config.resolved_dt_rank()) {
  in_proj = register_module("in_proj", std::make_shared<nn::Linear>(d_model, 2 * d_inner, gen, config.bias));
  conv1d = register_module("conv1d", std::make_shared<nn::CausalConv1d>(d_inner, d_conv, gen, config.conv_bias));
  x_proj = register_module("x_proj", std::make_shared<nn::Linear>(d_inner, dt_rank + 2 * d_state, gen, false));
  dt_proj = register_module("dt_proj", std::make_shared<nn::Linear>(dt_rank, d_inner, gen, true));
  out_proj = register_module("out_proj", std::make_shared<nn::Linear>(d_inner, d_model, gen, config.bias));
  A_log = register_parameter("A_log", empty({d_inner, d_state}));
  D = register_parameter("D", empty({d_inner}));
  init_parameters(config, gen);
}

// The official initialisation (mamba_simple.py), beyond the PyTorch-default Linear/Conv1d init:
void MambaMixer::init_parameters(const MambaConfig& config, Generator& gen) {
  NoGradGuard no_grad;
  // dt_proj.weight ~ U(-dt_rank^-1/2, dt_rank^-1/2), so dt starts near its bias.
  double dt_init_std = std::pow(static_cast<double>(dt_rank), -0.5);
  nn::init::uniform_(dt_proj->weight, -dt_init_std, dt_init_std, gen);
  // dt_proj.bias = softplus^-1(dt) with dt log-uniform in [dt_min, dt_max], floored: the initial
  // step sizes span two orders of magnitude, so channels start with both short and long memories.
  std::vector<float> bias(d_inner);
  for (auto& b : bias) {
    double u = gen.next_double();
    double dt = std::exp(u * (std::log(config.dt_max) - std::log(config.dt_min)) + std::log(config.dt_min));
    dt = std::max(dt, config.dt_init_floor);
    b = static_cast<float>(dt + std::log(-std::expm1(-dt)));  // inverse of softplus
  }
  copy_inplace(dt_proj->bias, from_vector(bias, {d_inner}));
  // A = -(1, 2, ..., N) in every channel (S4D-Real): a spread of decay rates.
  std::vector<float> a_log(d_inner * d_state);
  for (int64_t d = 0; d < d_inner; ++d)
    for (int64_t n = 0; n < d_state; ++n) a_log[d * d_state + n] = static_cast<float>(std::log(n + 1.0));
  copy_inplace(A_log, from_vector(a_log, {d_inner, d_state}));
  nn::init::ones_(D);
  // out_proj is re-initialized by the model (kaiming-uniform / sqrt(n_layer)); see MambaLM.
}

Tensor MambaMixer::forward(const Tensor& hidden, MixerState* state) {
  MG_CHECK(hidden.dim() == 3 && hidden.size(2) == d_model, "MambaMixer: expected hidden (B, L, ", d_model,
           "), got ", hidden.shape());
  int64_t L = hidden.size(1);
  // split (not two narrows): one backward node assembles the gradient of xz in one buffer.
  TensorList xz = split(in_proj->forward(hidden), {d_inner, d_inner}, 2);  // 2 x (B, L, d_inner)
  Tensor x = xz[0].transpose(1, 2);                             // (B, d_inner, L)
  Tensor z = xz[1].transpose(1, 2);                             // (B, d_inner, L)
  if (state) {  // the conv's state: its last d_conv inputs (zeros before the sequence start)
    NoGradGuard no_grad;
    Tensor padded = zeros({hidden.size(0), d_inner, d_conv}, {.dtype = hidden.dtype(), .device = hidden.device()});
    int64_t keep = std::min(L, d_conv);
    Tensor window = narrow(padded, 2, d_conv - keep, keep);
    copy_inplace(window, narrow(x, 2, L - keep, keep));
    state->conv_state = padded;
  }
  Tensor u = silu(conv1d->forward(x));                          // (B, d_inner, L)
  TensorList x_dbl = split(x_proj->forward(u.transpose(1, 2)), {dt_rank, d_state, d_state}, 2);
  Tensor Bm = x_dbl[1].transpose(1, 2);                         // (B, N, L)
  Tensor Cm = x_dbl[2].transpose(1, 2);                         // (B, N, L)
  // delta = dt_proj.weight dt, computed as W (d_inner, dt_rank) @ dt^T (B, dt_rank, L): the product
  // comes out (B, d_inner, L) contiguous, the scan's layout, where linear() would give (B, L, d_inner)
  // and the scan would copy its transpose. dt_proj's bias goes into the scan.
  Tensor delta = matmul(dt_proj->weight, x_dbl[0].transpose(1, 2));  // (B, d_inner, L)
  Tensor A = neg(exp(A_log));                                   // (d_inner, N)
  SelectiveScanArgs args{.D_skip = D, .z = z, .delta_bias = dt_proj->bias, .delta_softplus = true};
  SelectiveScanResult scan = selective_scan(u, delta, A, Bm, Cm, args);
  if (state) state->ssm_state = scan.last_state.detach();
  return out_proj->forward(scan.y.transpose(1, 2));             // (B, L, d_model)
}

MixerState MambaMixer::new_state(int64_t batch) const {
  TensorOptions options{.dtype = A_log.dtype(), .device = A_log.device()};
  return {zeros({batch, d_inner, d_conv}, options), zeros({batch, d_inner, d_state}, options)};
}

Tensor MambaMixer::step(const Tensor& hidden, MixerState& state) {
  NoGradGuard no_grad;
  MG_CHECK(hidden.dim() == 2 && hidden.size(1) == d_model, "MambaMixer.step: expected hidden (B, ", d_model,
           "), got ", hidden.shape());
  int64_t batch = hidden.size(0);
  MG_CHECK(state.conv_state.defined() && state.conv_state.shape() == Shape({batch, d_inner, d_conv}),
           "MambaMixer.step: conv state must be (", batch, ", ", d_inner, ", ", d_conv, ")");
  Tensor xz = in_proj->forward(hidden);              // (B, 2 d_inner)
  Tensor x = narrow(xz, 1, 0, d_inner);              // (B, d_inner)
  Tensor z = narrow(xz, 1, d_inner, d_inner);        // (B, d_inner)
  Tensor u = silu(causal_conv1d_step(state.conv_state, x, conv1d->weight.view({d_inner, d_conv}), conv1d->bias));
  Tensor x_dbl = x_proj->forward(u);                 // (B, dt_rank + 2N)
  Tensor dt = narrow(x_dbl, 1, 0, dt_rank);
  Tensor Bm = narrow(x_dbl, 1, dt_rank, d_state);    // (B, N)
  Tensor Cm = narrow(x_dbl, 1, dt_rank + d_state, d_state);
  Tensor delta = linear(dt, dt_proj->weight);        // (B, d_inner)
  if (!state.A.defined()) state.A = neg(exp(A_log));  // once per generation, not once per token
  SelectiveScanArgs args{.D_skip = D, .z = z, .delta_bias = dt_proj->bias, .delta_softplus = true};
  Tensor y = selective_scan_step(state.ssm_state, u, delta, state.A, Bm, Cm, args);  // (B, d_inner)
  return out_proj->forward(y);                       // (B, d_model)
}

}  // namespace mg::mamba
