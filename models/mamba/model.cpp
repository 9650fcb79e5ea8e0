#include "models/mamba/model.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "ops/mamba_step.h"
#include "ops/ops.h"

namespace mg::mamba {

ResidualBlock::ResidualBlock(const MambaConfig& config, Generator& gen) : nn::Module("ResidualBlock") {
  // Registration order = checkpoint order: the official Block defines mixer before norm.
  mixer = register_module("mixer", std::make_shared<MambaMixer>(config, gen));
  norm = register_module("norm", std::make_shared<nn::RMSNorm>(config.d_model, config.norm_eps));
}

Tensor ResidualBlock::forward(const Tensor& x, MixerState* state) { return add(x, mixer->forward(norm->forward(x), state)); }
Tensor ResidualBlock::step(const Tensor& x, MixerState& state) { return add(x, mixer->step(norm->forward(x), state)); }

MambaBackbone::MambaBackbone(const MambaConfig& config, Generator& gen) : nn::Module("MambaBackbone") {
  embeddings = register_module("embeddings", std::make_shared<nn::Embedding>(config.padded_vocab_size(), config.d_model, gen));
  layers = register_module("layers", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < config.n_layer; ++i) layers->push_back(std::make_shared<ResidualBlock>(config, gen));
  norm_f = register_module("norm_f", std::make_shared<nn::RMSNorm>(config.d_model, config.norm_eps));
}

MambaLM::MambaLM(const MambaConfig& config_, Generator& gen) : LanguageModel("MambaLM"), config(config_) {
  config.validate();
  backbone = register_module("backbone", std::make_shared<MambaBackbone>(config, gen));
  // The official _init_weights: embedding ~ N(0, 0.02); out_proj re-drawn kaiming-uniform and
  // scaled by 1/sqrt(n_layer), so the residual stream's variance does not grow with depth
  // (GPT-2's "scaled init"); Linear biases zero except dt_proj's.
  NoGradGuard no_grad;
  nn::init::normal_(backbone->embeddings->weight, 0.0, 0.02, gen);
  for (size_t i = 0; i < backbone->layers->size(); ++i) {
    MambaMixer& mixer = *layer(i).mixer;
    nn::init::kaiming_uniform_(mixer.out_proj->weight, gen);
    mul_inplace(mixer.out_proj->weight, 1.0 / std::sqrt(static_cast<double>(config.n_layer)));
    for (auto* linear : {mixer.in_proj.get(), mixer.x_proj.get(), mixer.out_proj.get()})
      if (linear->bias.defined()) nn::init::zeros_(linear->bias);
  }
}

ResidualBlock& MambaLM::layer(size_t i) const { return *backbone->layers->at<ResidualBlock>(i); }

Tensor MambaLM::logits(const Tensor& hidden) const {
  return linear(backbone->norm_f->forward(hidden), backbone->embeddings->weight);
}

Tensor MambaLM::forward(const Tensor& tokens, InferenceState* state) {
  MG_CHECK(tokens.dim() == 2 && tokens.dtype() == DType::Int64, "MambaLM: expected int64 tokens (B, L), got ",
           tokens.shape(), " ", tokens.dtype());
  if (state) state->layers.assign(backbone->layers->size(), {});
  Tensor h = backbone->embeddings->forward(tokens);  // (B, L, d_model)
  for (size_t i = 0; i < backbone->layers->size(); ++i) h = layer(i).forward(h, state ? &state->layers[i] : nullptr);
  return logits(h);  // (B, L, vocab)
}

Tensor MambaLM::loss(const Tensor& inputs, const Tensor& targets) {
  Tensor out = forward(inputs);
  return cross_entropy(out.reshape({-1, out.size(-1)}), targets.reshape({-1}));
}

InferenceState MambaLM::new_state(int64_t batch) const {
  InferenceState state;
  for (size_t i = 0; i < backbone->layers->size(); ++i) state.layers.push_back(layer(i).mixer->new_state(batch));
  return state;
}

MambaStepModel MambaLM::fused_step_inputs(InferenceState& state) const {
  MambaStepModel fused{.embeddings = backbone->embeddings->weight,
                       .layers = {},
                       .norm_f_weight = backbone->norm_f->weight,
                       .norm_f_eps = backbone->norm_f->eps};
  if (state.layers.size() != backbone->layers->size()) return fused;
  for (size_t i = 0; i < state.layers.size(); ++i) {
    const ResidualBlock& block = layer(i);
    const MambaMixer& m = *block.mixer;
    MixerState& s = state.layers[i];
    if (!s.A.defined()) s.A = neg(exp(m.A_log));  // once per generation, not once per token
    fused.layers.push_back({.norm_weight = block.norm->weight, .norm_eps = block.norm->eps,
                            .in_weight = m.in_proj->weight, .in_bias = m.in_proj->bias,
                            .conv_weight = m.conv1d->weight, .conv_bias = m.conv1d->bias,
                            .x_weight = m.x_proj->weight, .dt_weight = m.dt_proj->weight, .dt_bias = m.dt_proj->bias,
                            .A = s.A, .D = m.D, .out_weight = m.out_proj->weight, .out_bias = m.out_proj->bias,
                            .conv_state = s.conv_state, .ssm_state = s.ssm_state});
  }
  return fused;
}

Tensor MambaLM::step(const Tensor& tokens, InferenceState& state) {
  NoGradGuard no_grad;
  MambaStepModel fused = fused_step_inputs(state);
  if (mamba_step_supported(fused)) return mamba_step(tokens, fused, state.workspace);
  return step_composed(tokens, state);
}

Tensor MambaLM::step_composed(const Tensor& tokens, InferenceState& state) {
  NoGradGuard no_grad;
  MG_CHECK(tokens.dim() == 1 && tokens.dtype() == DType::Int64, "MambaLM.step: expected int64 tokens (B), got ",
           tokens.shape(), " ", tokens.dtype());
  MG_CHECK(state.layers.size() == backbone->layers->size(), "MambaLM.step: the state has ", state.layers.size(),
           " layers, the model ", backbone->layers->size(), " (use new_state or forward(tokens, &state))");
  Tensor h = backbone->embeddings->forward(tokens);  // (B, d_model)
  for (size_t i = 0; i < backbone->layers->size(); ++i) h = layer(i).step(h, state.layers[i]);
  return logits(h);  // (B, vocab)
}

}  // namespace mg::mamba
