#pragma once
// Pretrained Mamba models in the Hugging Face layout (state-spaces/mamba-130m-hf ... 2.8b-hf, and
// the original state-spaces/mamba-* directories once their weights are in safetensors):
//   DIR/config.json                  transformers' MambaConfig keys (hidden_size, state_size,
//                                    num_hidden_layers, ...) or the original ones (d_model,
//                                    n_layer, ssm_cfg, ...)
//   DIR/model.safetensors            the weights (F32, F64, F16 or BF16; loaded as float32), or
//   DIR/model.safetensors.index.json and the shards it names
// The parameter names are ours already (backbone.layers.3.mixer.in_proj.weight); the original
// layout's backbone.embedding.weight is renamed, and a stored lm_head.weight must equal the
// embedding (the head is tied). What loads is an ordinary MambaLM: .to(device) moves it.
// A pickle (pytorch_model.bin) is refused: loading one runs code (the message says how to convert).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/mamba/model.h"
#include "nn/state_dict.h"

namespace mg::mamba {

struct PretrainedConfig {
  MambaConfig config;
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;
  // Keys this program does not know; they are ignored (the app prints them, so nothing is
  // ignored silently). Keys known to matter only for initialisation or training are not listed.
  std::vector<std::string> unknown_keys;
};

// config.json's text; `source` names it in errors. Throws mg::Error naming the key when a value
// is of the wrong type or asks for something this model does not have (LayerNorm, Mamba-2, ...).
PretrainedConfig parse_pretrained_config(const std::string& json, const std::string& source);

// The tensors of DIR's weights as our parameter names, every floating tensor float32.
nn::StateDict load_pretrained_weights(const std::string& dir);

struct PretrainedModel {
  std::shared_ptr<MambaLM> model;
  PretrainedConfig info;
};
PretrainedModel load_pretrained(const std::string& dir);

// Writes `model` as a Hugging Face directory that transformers' MambaForCausalLM.from_pretrained
// loads: config.json and model.safetensors (float32, metadata {"format": "pt"}). Token ids for
// bos/eos/pad are written as given (null when absent: transformers would default them to 0).
// Refuses a directory that already holds model files (nothing saved is overwritten); each file
// is written atomically.
void save_pretrained(const MambaLM& model, const std::string& dir, std::optional<int64_t> bos_token_id = std::nullopt,
                     std::optional<int64_t> eos_token_id = std::nullopt,
                     std::optional<int64_t> pad_token_id = std::nullopt);

}  // namespace mg::mamba
