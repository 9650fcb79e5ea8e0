// Loading and saving Hugging Face Mamba directories (models/mamba/pretrained.h); config.json's
// keys are mapped in pretrained_config.cpp.
#include "models/mamba/pretrained.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "autograd/grad_mode.h"
#include "nn/atomic_file.h"
#include "nn/safetensors.h"
#include "ops/ops.h"

namespace mg::mamba {

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  MG_CHECK(in.good(), "pretrained: cannot open ", path.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

[[noreturn]] void refuse_pickle(const fs::path& dir, const std::string& file) {
  const std::string in = (dir / file).string(), out = (dir / "model.safetensors").string();
  throw Error(str(
      "pretrained: ", dir.string(), " holds its weights as ", file,
      ", a PyTorch pickle: loading a pickle runs whatever code it contains, so mambagrad does not read it. "
      "Convert it to safetensors once, with Python (torch and safetensors installed): python3 -c \"import torch; "
      "from safetensors.torch import save_file; sd = torch.load('", in,
      "', map_location='cpu', weights_only=True); save_file({k: v.clone().contiguous() for k, v in sd.items()}, '",
      out, "', metadata={'format': 'pt'})\" (for a sharded .bin, load each shard and save one file; or, for a "
      "transformers directory, MambaForCausalLM.from_pretrained(DIR).save_pretrained(NEW_DIR))"));
}

// The shards named by model.safetensors.index.json, each with the tensors it must hold.
std::map<std::string, std::set<std::string>> read_index(const fs::path& index) {
  json j;
  try {
    j = json::parse(read_text(index));
  } catch (const json::exception& e) {
    throw Error(str("pretrained: ", index.string(), " is not valid JSON (", e.what(), ")"));
  }
  MG_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), "pretrained: ", index.string(),
           " has no \"weight_map\" object");
  std::map<std::string, std::set<std::string>> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    MG_CHECK(file.is_string(), "pretrained: ", index.string(), ": the shard of '", name, "' is not a file name");
    const std::string shard = file.get<std::string>();
    MG_CHECK(shard.find('/') == std::string::npos && shard != ".." && !shard.empty(), "pretrained: ",
             index.string(), ": shard name \"", shard, "\" must be a file in the same directory");
    shards[shard].insert(name);
  }
  return shards;
}

nn::StateDict read_weights(const fs::path& dir) {
  const fs::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    nn::StateDict all;
    for (const auto& [shard, names] : read_index(index)) {
      nn::SafetensorsContents contents = nn::load_safetensors((dir / shard).string());
      for (const std::string& name : names)
        MG_CHECK(contents.tensors.contains(name), "pretrained: ", (dir / shard).string(), " lacks '", name,
                 "', which ", index.string(), " places there");
      for (const auto& [name, t] : contents.tensors) {
        MG_CHECK(names.count(name), "pretrained: ", (dir / shard).string(), " holds '", name, "', which ",
                 index.string(), " does not place there");
        all.set(name, t);
      }
    }
    return all;
  }
  if (fs::exists(single)) return nn::load_safetensors(single.string()).tensors;
  for (const char* pickle : {"pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.bin"})
    if (fs::exists(dir / pickle)) refuse_pickle(dir, pickle);
  throw Error(str("pretrained: ", dir.string(), " has no model.safetensors or model.safetensors.index.json"));
}
}  // namespace

nn::StateDict load_pretrained_weights(const std::string& dir_name) {
  const fs::path dir(dir_name);
  nn::StateDict out;
  const Tensor* head = nullptr;
  nn::StateDict raw = read_weights(dir);
  for (const auto& [file_name, t] : raw) {
    // The original layout names the embedding in the singular and stores the tied head.
    const std::string name = file_name == "backbone.embedding.weight" ? "backbone.embeddings.weight" : file_name;
    MG_CHECK(!out.contains(name), "pretrained: ", dir.string(), " holds the embedding twice (",
             "backbone.embedding.weight and backbone.embeddings.weight)");
    if (name == "lm_head.weight") {
      head = &t;
      continue;
    }
    out.set(name, is_floating(t.dtype()) && t.dtype() != DType::Float32 ? to_dtype(t, DType::Float32) : t);
  }
  if (head) {  // a stored head must be the embedding: the model ties them
    const Tensor* embedding = out.find("backbone.embeddings.weight");
    const Tensor head32 = to_dtype(*head, DType::Float32).contiguous();
    MG_CHECK(embedding && embedding->shape() == head->shape() &&
                 std::equal(head32.data<float>(), head32.data<float>() + head32.numel(),
                            embedding->contiguous().data<float>()),
             "pretrained: ", dir.string(), ": lm_head.weight differs from the embedding; untied heads are not supported");
  }
  return out;
}

PretrainedModel load_pretrained(const std::string& dir_name) {
  const fs::path dir(dir_name);
  MG_CHECK(fs::is_directory(dir), "pretrained: ", dir_name, " is not a directory");
  MG_CHECK(fs::exists(dir / "config.json"), "pretrained: ", dir_name, " has no config.json");
  PretrainedModel out;
  out.info = parse_pretrained_config(read_text(dir / "config.json"), (dir / "config.json").string());
  nn::StateDict weights = load_pretrained_weights(dir_name);
  Generator unused(0);  // the initial values are overwritten
  out.model = std::make_shared<MambaLM>(out.info.config, unused);
  try {
    out.model->load_state_dict(weights, /*strict=*/true);
  } catch (const Error& e) {
    throw Error(str("pretrained: the weights in ", dir_name, " do not fit its config.json: ", e.what()));
  }
  return out;
}

void save_pretrained(const MambaLM& model, const std::string& dir_name, std::optional<int64_t> bos_token_id,
                     std::optional<int64_t> eos_token_id, std::optional<int64_t> pad_token_id) {
  const fs::path dir(dir_name);
  if (fs::exists(dir)) {
    MG_CHECK(fs::is_directory(dir), "export: ", dir_name, " exists and is not a directory");
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string name = entry.path().filename().string();
      MG_CHECK(name != "config.json" && entry.path().extension() != ".safetensors" &&
                   entry.path().extension() != ".bin" && name != "model.safetensors.index.json",
               "export: ", dir_name, " already holds a model (", name,
               "); choose a new or empty directory (nothing is overwritten)");
    }
  }
  fs::create_directories(dir);
  const MambaConfig& c = model.config;
  auto token = [](std::optional<int64_t> id) { return id ? json(*id) : json(nullptr); };
  const json config = {{"architectures", {"MambaForCausalLM"}},
                       {"model_type", "mamba"},
                       {"vocab_size", c.padded_vocab_size()},  // the embedding's rows, as transformers expects
                       {"hidden_size", c.d_model},
                       {"state_size", c.d_state},
                       {"num_hidden_layers", c.n_layer},
                       {"layer_norm_epsilon", c.norm_eps},
                       {"expand", c.expand},
                       {"conv_kernel", c.d_conv},
                       {"intermediate_size", c.d_inner()},
                       {"time_step_rank", c.resolved_dt_rank()},
                       {"time_step_min", c.dt_min},
                       {"time_step_max", c.dt_max},
                       {"time_step_floor", c.dt_init_floor},
                       {"use_bias", c.bias},
                       {"use_conv_bias", c.conv_bias},
                       {"hidden_act", "silu"},
                       {"residual_in_fp32", true},
                       {"tie_word_embeddings", true},
                       {"bos_token_id", token(bos_token_id)},
                       {"eos_token_id", token(eos_token_id)},
                       {"pad_token_id", token(pad_token_id)},
                       {"torch_dtype", "float32"}};
  // transformers refuses a safetensors file without {"format": "pt"}.
  nn::save_safetensors((dir / "model.safetensors").string(), model.state_dict(), {{"format", "pt"}});
  nn::write_file_atomically((dir / "config.json").string(), config.dump(2) + "\n");
}

}  // namespace mg::mamba
