#pragma once
// A GPT-2 language model (Radford et al. 2019; Karpathy's nanoGPT), read top-down:
// Config -> Attention, MLP -> Block -> GPT.
//   tokens (B, L) -> wte(tokens) + wpe(positions) -> n_layer x Block -> ln_f -> logits = h @ wte^T
//   Block: x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))                         (pre-LayerNorm)
//   attn:  q | k | v = c_attn(x) split in H heads; causal softmax(q k^T / sqrt(Dh)) v; c_proj
//   mlp:   c_proj(gelu_tanh(c_fc(x))), 4 C wide
//
// Names and layouts are Hugging Face GPT2LMHeadModel's, so its safetensors load as they are:
//   transformer.wte.weight (V, C), transformer.wpe.weight (P, C),
//   transformer.h.{i}.ln_1.{weight,bias} (C), transformer.h.{i}.attn.c_attn.{weight (C, 3C), bias (3C)},
//   transformer.h.{i}.attn.c_proj.{weight (C, C), bias (C)}, transformer.h.{i}.ln_2.{weight,bias},
//   transformer.h.{i}.mlp.c_fc.{weight (C, 4C), bias (4C)}, transformer.h.{i}.mlp.c_proj.{weight (4C, C), bias (C)},
//   transformer.ln_f.{weight,bias}.
// GPT-2's projections are "Conv1D" layers whose weight is stored (in, out), the transpose of
// nn::Linear's (out, in): Conv1D below keeps that layout, so nothing is transposed on load or
// export. The LM head is tied to wte and has no tensor of its own (HF's file may list
// lm_head.weight, the same values: load_hf_state_dict drops it after checking it equals wte).
#include <vector>

#include "models/gpt/config.h"
#include "models/language_model.h"
#include "nn/containers.h"
#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/kv_cache.h"
#include "nn/layer_norm.h"

namespace mg::gpt {

// y = x @ weight + bias, weight (in, out): GPT-2's Conv1D (a linear layer with the weight transposed).
class Conv1D : public nn::UnaryModule {
 public:
  Conv1D(int64_t in_features, int64_t out_features);  // weight N(0, 0.02), bias zeros
  Tensor forward(const Tensor& x) override;            // (..., in) -> (..., out)
  Tensor weight;  // (in, out)
  Tensor bias;    // (out)
};

class Attention : public nn::Module {
 public:
  explicit Attention(const GPTConfig& config);
  // x (B, L, C) -> (B, L, C). With a cache: x holds the next L positions after those cached.
  Tensor forward(const Tensor& x, nn::KVCache* cache = nullptr);
  const int64_t n_head, head_dim;
  std::shared_ptr<Conv1D> c_attn, c_proj;
};

class MLP : public nn::UnaryModule {
 public:
  explicit MLP(const GPTConfig& config);
  Tensor forward(const Tensor& x) override;  // (B, L, C) -> (B, L, C)
  std::shared_ptr<Conv1D> c_fc, c_proj;
};

class Block : public nn::Module {
 public:
  Block(const GPTConfig& config, Generator& dropout_gen);
  Tensor forward(const Tensor& x, nn::KVCache* cache = nullptr);
  std::shared_ptr<nn::LayerNorm> ln_1, ln_2;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<MLP> mlp;
  std::shared_ptr<nn::Dropout> dropout;
};

class Transformer : public nn::Module {
 public:
  Transformer(const GPTConfig& config, Generator& dropout_gen);
  std::shared_ptr<nn::Embedding> wte, wpe;
  std::shared_ptr<nn::ModuleList> h;  // of Block
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Dropout> drop;
};

class GPT : public LanguageModel {
 public:
  // GPT-2's initialisation, drawn from `gen`: every weight N(0, 0.02), biases 0, LayerNorms 1 and
  // 0, and the residual projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / sqrt(2 n_layer)).
  GPT(const GPTConfig& config, Generator& gen);

  // tokens (B, L) int64 -> logits (B, L, vocab). With caches (one per layer), the tokens continue
  // the cached sequence: positions start at the caches' length.
  Tensor forward(const Tensor& tokens, std::vector<nn::KVCache>* caches = nullptr);

  std::string kind() const override { return "gpt"; }
  std::string config_json() const override { return config.to_json(); }
  int64_t vocab_size() const override { return config.vocab_size; }
  Tensor loss(const Tensor& inputs, const Tensor& targets) override;
  std::unique_ptr<GenerationSession> start_generation(int64_t batch) override;
  Generator* training_generator() override { return &dropout_gen_; }

  const GPTConfig config;
  std::shared_ptr<Transformer> transformer;

 private:
  Block& block(size_t i) const { return *transformer->h->at<Block>(i); }
  Generator dropout_gen_;
};

// A Hugging Face GPT2LMHeadModel state dict made loadable into GPT: drops lm_head.weight (after
// checking that it equals transformer.wte.weight: a head that is not tied cannot be represented)
// and the causal-mask buffers older versions store (transformer.h.{i}.attn.bias / .masked_bias).
// Names and layouts are otherwise the same; throws mg::Error naming what does not fit.
nn::StateDict from_hf_state_dict(const nn::StateDict& hf);

}  // namespace mg::gpt
