#pragma once
// MambaConfig: the hyperparameters of a Mamba language model, with the official defaults
// (state-spaces/mamba's MambaConfig and Mamba mixer arguments), read from and written to JSON.
#include <cstdint>
#include <string>

namespace mg::mamba {

struct MambaConfig {
  int64_t d_model = 128;
  int64_t n_layer = 4;
  int64_t vocab_size = 65;
  int64_t d_state = 16;  // N
  int64_t d_conv = 4;    // K, the causal conv's width
  int64_t expand = 2;    // d_inner = expand * d_model
  int64_t dt_rank = 0;   // 0 means "auto": ceil(d_model / 16)
  double dt_min = 0.001, dt_max = 0.1, dt_init_floor = 1e-4;
  bool conv_bias = true;
  bool bias = false;  // biases of in_proj and out_proj
  int64_t pad_vocab_size_multiple = 1;
  bool tie_embeddings = true;
  double norm_eps = 1e-5;

  int64_t d_inner() const { return expand * d_model; }
  int64_t resolved_dt_rank() const { return dt_rank > 0 ? dt_rank : (d_model + 15) / 16; }
  // vocab_size rounded up to a multiple of pad_vocab_size_multiple (the embedding's row count).
  int64_t padded_vocab_size() const;
  // The parameter count of MambaLM(config), from the shapes alone, without building it (a loader
  // compares it with what a file holds before allocating); INT64_MAX if it does not fit an int64.
  int64_t num_parameters() const;

  // Throws mg::Error naming the field when a value is out of range.
  void validate() const;
  std::string to_json() const;  // pretty-printed
  // Unknown keys are an error (a typo must not silently fall back to a default); missing keys
  // keep their defaults.
  static MambaConfig from_json(const std::string& json);
  static MambaConfig load(const std::string& path);
};

}  // namespace mg::mamba
