#pragma once
// GPTConfig: the hyperparameters of a GPT-2 style language model (Radford et al. 2019; nanoGPT),
// with Hugging Face GPT2Config's field names, read from and written to JSON.
#include <cstdint>
#include <string>

namespace mg::gpt {

struct GPTConfig {
  int64_t vocab_size = 65;
  int64_t n_positions = 128;  // the context window (nanoGPT's block_size): rows of wpe
  // The defaults are the standard CPU config's GPT: 477,792 parameters at vocab 65, within 0.6% of
  // the standard Mamba's 474,880 (models/mamba/config.h), for side-by-side comparisons.
  int64_t n_embd = 112;       // C
  int64_t n_layer = 3;
  int64_t n_head = 4;         // H; the head size is C / H
  double layer_norm_epsilon = 1e-5;
  double dropout = 0.0;       // on the embeddings and on each residual branch (nanoGPT's); 0 = off

  int64_t head_dim() const { return n_embd / n_head; }
  // Parameters: embeddings V C + P C, per block 12 C^2 + 13 C, the final LayerNorm 2 C (tied head);
  // INT64_MAX when that does not fit in int64.
  int64_t num_parameters() const;

  void validate() const;  // throws mg::Error naming the field
  std::string to_json() const;
  // Unknown keys are an error; missing keys keep their defaults.
  static GPTConfig from_json(const std::string& json);
};

}  // namespace mg::gpt
