#include "models/gpt/model.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "nn/init.h"
#include "ops/ops.h"
#include "tensor/factory.h"

namespace mg::gpt {

Conv1D::Conv1D(int64_t in_features, int64_t out_features) : nn::UnaryModule("Conv1D") {
  weight = register_parameter("weight", zeros({in_features, out_features}));
  bias = register_parameter("bias", zeros({out_features}));
}

// linear() takes (out, in): the transposed view of (in, out) is read in place by the GEMM.
Tensor Conv1D::forward(const Tensor& x) { return linear(x, weight.transpose(0, 1), bias); }

Attention::Attention(const GPTConfig& config)
    : nn::Module("Attention"), n_head(config.n_head), head_dim(config.head_dim()) {
  c_attn = register_module("c_attn", std::make_shared<Conv1D>(config.n_embd, 3 * config.n_embd));
  c_proj = register_module("c_proj", std::make_shared<Conv1D>(config.n_embd, config.n_embd));
}

Tensor Attention::forward(const Tensor& x, nn::KVCache* cache) {
  const int64_t B = x.size(0), L = x.size(1), C = x.size(2);
  // q | k | v: (B, L, C) each, viewed as heads (B, H, L, Dh) without a copy
  TensorList qkv = split(c_attn->forward(x), {C, C, C}, 2);
  auto heads = [&](const Tensor& t) { return t.view({B, L, n_head, head_dim}).transpose(1, 2); };
  Tensor q = heads(qkv[0]), k = heads(qkv[1]), v = heads(qkv[2]);
  if (cache != nullptr) std::tie(k, v) = cache->append(k, v);  // (B, H, cached + L, Dh)
  Tensor y = scaled_dot_product_attention(q, k, v, {.causal = true});  // (B, H, L, Dh), laid out (B, L, H, Dh)
  return c_proj->forward(y.transpose(1, 2).reshape({B, L, C}));
}

MLP::MLP(const GPTConfig& config) : nn::UnaryModule("MLP") {
  c_fc = register_module("c_fc", std::make_shared<Conv1D>(config.n_embd, 4 * config.n_embd));
  c_proj = register_module("c_proj", std::make_shared<Conv1D>(4 * config.n_embd, config.n_embd));
}

Tensor MLP::forward(const Tensor& x) { return c_proj->forward(gelu_tanh(c_fc->forward(x))); }

Block::Block(const GPTConfig& config, Generator& dropout_gen) : nn::Module("Block") {
  // Registration order = Hugging Face's state_dict order.
  ln_1 = register_module("ln_1", std::make_shared<nn::LayerNorm>(config.n_embd, config.layer_norm_epsilon));
  attn = register_module("attn", std::make_shared<Attention>(config));
  ln_2 = register_module("ln_2", std::make_shared<nn::LayerNorm>(config.n_embd, config.layer_norm_epsilon));
  mlp = register_module("mlp", std::make_shared<MLP>(config));
  // No parameters, so nothing in the state dict; registered so that eval() turns it off.
  dropout = register_module("dropout", std::make_shared<nn::Dropout>(config.dropout, dropout_gen));
}

Tensor Block::forward(const Tensor& x, nn::KVCache* cache) {
  Tensor h = add(x, dropout->forward(attn->forward(ln_1->forward(x), cache)));
  return add(h, dropout->forward(mlp->forward(ln_2->forward(h))));
}

Transformer::Transformer(const GPTConfig& config, Generator& dropout_gen) : nn::Module("Transformer") {
  Generator unused(0);  // GPT's constructor draws every parameter
  wte = register_module("wte", std::make_shared<nn::Embedding>(config.vocab_size, config.n_embd, unused));
  wpe = register_module("wpe", std::make_shared<nn::Embedding>(config.n_positions, config.n_embd, unused));
  h = register_module("h", std::make_shared<nn::ModuleList>());
  for (int64_t i = 0; i < config.n_layer; ++i) h->push_back(std::make_shared<Block>(config, dropout_gen));
  ln_f = register_module("ln_f", std::make_shared<nn::LayerNorm>(config.n_embd, config.layer_norm_epsilon));
  drop = register_module("drop", std::make_shared<nn::Dropout>(config.dropout, dropout_gen));
}

GPT::GPT(const GPTConfig& config_, Generator& gen)
    : LanguageModel("GPT"), config(config_), dropout_gen_(gen.state()[0] ^ 0x9E3779B97F4A7C15ull) {
  config.validate();
  transformer = register_module("transformer", std::make_shared<Transformer>(config, dropout_gen_));
  // GPT-2's init (HF GPT2PreTrainedModel._init_weights; nanoGPT's _init_weights), in state_dict order.
  NoGradGuard no_grad;
  const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(config.n_layer));
  for (auto& [name, p] : named_parameters()) {
    const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (name.find(".ln_") != std::string::npos) continue;  // LayerNorms keep ones and zeros
    if (!is_weight) continue;                                // biases stay zero
    const bool residual = name.find("c_proj.weight") != std::string::npos;
    nn::init::normal_(p, 0.0, residual ? residual_std : 0.02, gen);
  }
}

Tensor GPT::forward(const Tensor& tokens, std::vector<nn::KVCache>* caches) {
  MG_CHECK(tokens.dim() == 2 && tokens.dtype() == DType::Int64, "GPT: expected int64 tokens (B, L), got ",
           tokens.shape(), " ", tokens.dtype());
  const int64_t L = tokens.size(1);
  if (caches != nullptr && caches->empty()) caches->resize(transformer->h->size());
  MG_CHECK(caches == nullptr || caches->size() == transformer->h->size(), "GPT: expected ", transformer->h->size(),
           " KV caches (one per layer), got ", caches->size());
  const int64_t start = caches != nullptr ? (*caches)[0].length() : 0;
  MG_CHECK(start + L <= config.n_positions, "GPT: positions ", start, "..", start + L - 1,
           " do not fit the context window of n_positions = ", config.n_positions, " (tokens ", tokens.shape(), ")");
  Tensor positions = arange(start, start + L).to(tokens.device());
  Tensor x = add(transformer->wte->forward(tokens), transformer->wpe->forward(positions));  // (B, L, C)
  x = transformer->drop->forward(x);
  for (size_t i = 0; i < transformer->h->size(); ++i) x = block(i).forward(x, caches ? &(*caches)[i] : nullptr);
  return linear(transformer->ln_f->forward(x), transformer->wte->weight);  // tied head: (B, L, vocab)
}

Tensor GPT::loss(const Tensor& inputs, const Tensor& targets) {
  Tensor logits = forward(inputs);
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

namespace {

// Generation with a KV cache per layer: each new token attends over the cached keys and values.
// When the context window is full, the caches restart from the last half window of tokens
// (recomputed in one parallel pass), as the learned positions cannot go past n_positions.
class GPTGeneration : public GenerationSession {
 public:
  GPTGeneration(GPT& model, int64_t batch) : model_(model), batch_(batch), history_(batch) {}

  Tensor feed(const Tensor& tokens) override {
    NoGradGuard no_grad;
    MG_CHECK(tokens.dim() == 2 && tokens.size(0) == batch_ && tokens.dtype() == DType::Int64,
             "GPT generation: expected int64 tokens (", batch_, ", T), got ", tokens.shape(), " ", tokens.dtype());
    const int64_t window = model_.config.n_positions, T = tokens.size(1);
    MG_CHECK(T >= 1, "GPT generation: feed at least one token");
    std::vector<int64_t> ids = tokens.contiguous().to_vector<int64_t>();  // (B, T)
    for (int64_t b = 0; b < batch_; ++b) history_[b].insert(history_[b].end(), ids.begin() + b * T, ids.begin() + (b + 1) * T);
    position_ += T;
    Tensor input = tokens;
    if (cached() + T > window) {  // restart from the last half window
      caches_.clear();
      const int64_t keep = std::min<int64_t>(static_cast<int64_t>(history_[0].size()), std::max<int64_t>(window / 2, 1));
      std::vector<int64_t> kept;
      for (auto& row : history_) {
        row.erase(row.begin(), row.end() - keep);
        kept.insert(kept.end(), row.begin(), row.end());
      }
      input = from_vector(kept, {batch_, keep}).to(tokens.device());
    }
    Tensor logits = model_.forward(input, &caches_);  // (B, T, vocab)
    return contiguous(narrow(logits, 1, logits.size(1) - 1, 1).squeeze(1));
  }
  int64_t position() const override { return position_; }
  int64_t state_bytes() const override {
    int64_t bytes = 0;
    for (const nn::KVCache& cache : caches_) bytes += cache.used_bytes();
    return bytes;
  }

 private:
  int64_t cached() const { return caches_.empty() ? 0 : caches_[0].length(); }
  GPT& model_;
  int64_t batch_;
  std::vector<nn::KVCache> caches_;
  std::vector<std::vector<int64_t>> history_;  // per sequence, the tokens in the caches (to restart from)
  int64_t position_ = 0;
};

}  // namespace

nn::StateDict from_hf_state_dict(const nn::StateDict& hf) {
  nn::StateDict out;
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (const auto& [name, t] : hf) {
    if (ends_with(name, ".attn.bias") || ends_with(name, ".attn.masked_bias")) continue;  // mask buffers
    if (name == "lm_head.weight") {
      const Tensor* wte = hf.find("transformer.wte.weight");
      MG_CHECK(wte != nullptr && wte->shape() == t.shape() &&
                   wte->to(DType::Float64).to_vector<double>() == t.to(DType::Float64).to_vector<double>(),
               "GPT: lm_head.weight ", t.shape(), " differs from transformer.wte.weight: only a head tied to the "
               "token embedding is supported");
      continue;
    }
    out.set(name, t);
  }
  return out;
}

std::unique_ptr<GenerationSession> GPT::start_generation(int64_t batch) {
  return std::make_unique<GPTGeneration>(*this, batch);
}

}  // namespace mg::gpt
