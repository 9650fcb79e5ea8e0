// config.json of a pretrained Mamba: transformers' MambaConfig keys or the original state-spaces
// keys, mapped to our MambaConfig (models/mamba/pretrained.h).
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "models/mamba/pretrained.h"
#include "tensor/json_integer.h"

namespace mg::mamba {

namespace {
using nlohmann::json;

// Keys that do not change what the model computes at inference (initialisation, training or
// kernel choices, bookkeeping). residual_in_fp32: every sum here is float32 already.
const std::set<std::string> kNoEffect = {
    "architectures",   "torch_dtype",          "transformers_version", "initializer_range", "rescale_prenorm_residual",
    "residual_in_fp32", "time_step_scale",     "time_step_init_scheme", "use_cache",        "use_mambapy",
    "fused_add_norm",  "_name_or_path",        "output_hidden_states", "output_attentions", "return_dict",
    "id2label",        "label2id",             "problem_type",         "tokenizer_class",   "pad_vocab_size_multiple"};

struct Reader {
  const json& j;
  std::string source;
  std::set<std::string> used;

  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  template <class T>
  T get(const std::string& key, T fallback) {
    used.insert(key);
    if (!has(key)) return fallback;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>)  // tensor/json_integer.h
      MG_CHECK(!j[key].is_number() || json_integer_fits<T>(j[key]), "config ", source, ": \"", key,
               "\" must be an integer within int64, got ", j[key].dump());
    try {
      return j[key].get<T>();
    } catch (const json::exception&) {
      throw Error(str("config ", source, ": \"", key, "\" has the wrong type (", j[key].dump(), ")"));
    }
  }
  std::optional<int64_t> token(const std::string& key) {
    used.insert(key);
    return has(key) ? std::optional<int64_t>(get<int64_t>(key, 0)) : std::nullopt;
  }
  std::vector<std::string> unknown() const {
    std::vector<std::string> out;
    for (const auto& [key, value] : j.items())
      if (!used.count(key) && !kNoEffect.count(key)) out.push_back(key);
    return out;
  }
};

void require(bool ok, const std::string& source, const std::string& what) {
  MG_CHECK(ok, "config ", source, ": ", what);
}

// transformers' MambaConfig (model_type "mamba").
PretrainedConfig from_transformers(Reader& r) {
  PretrainedConfig out;
  MambaConfig& c = out.config;
  c.d_model = r.get<int64_t>("hidden_size", 768);
  c.n_layer = r.get<int64_t>("num_hidden_layers", r.get<int64_t>("n_layer", 32));
  require(!r.has("n_layer") || r.get<int64_t>("n_layer", c.n_layer) == c.n_layer, r.source,
          "n_layer and num_hidden_layers disagree");
  c.vocab_size = r.get<int64_t>("vocab_size", 50280);
  c.pad_vocab_size_multiple = 1;  // transformers does not pad the embedding: it has vocab_size rows
  c.d_state = r.get<int64_t>("state_size", 16);
  c.d_conv = r.get<int64_t>("conv_kernel", 4);
  c.expand = r.get<int64_t>("expand", 2);
  if (r.has("intermediate_size"))
    require(r.get<int64_t>("intermediate_size", 0) == c.expand * c.d_model, r.source,
            str("intermediate_size ", r.j["intermediate_size"].dump(), " is not expand * hidden_size = ",
                c.expand * c.d_model));
  r.used.insert("time_step_rank");
  if (r.has("time_step_rank") && r.j["time_step_rank"].is_string()) {
    require(r.j["time_step_rank"] == "auto", r.source, "time_step_rank must be a number or \"auto\"");
    c.dt_rank = 0;
  } else {
    c.dt_rank = r.get<int64_t>("time_step_rank", 0);
  }
  c.bias = r.get<bool>("use_bias", false);
  c.conv_bias = r.get<bool>("use_conv_bias", true);
  c.norm_eps = r.get<double>("layer_norm_epsilon", 1e-5);
  c.tie_embeddings = r.get<bool>("tie_word_embeddings", true);
  c.dt_min = r.get<double>("time_step_min", c.dt_min);
  c.dt_max = r.get<double>("time_step_max", c.dt_max);
  c.dt_init_floor = r.get<double>("time_step_floor", c.dt_init_floor);
  const std::string act = r.get<std::string>("hidden_act", "silu");
  require(act == "silu", r.source, str("hidden_act \"", act, "\" is not supported (Mamba uses silu)"));
  out.bos_token_id = r.token("bos_token_id");
  out.eos_token_id = r.token("eos_token_id");
  out.pad_token_id = r.token("pad_token_id");
  return out;
}

// The original state-spaces/mamba MambaConfig (d_model, n_layer, ssm_cfg, ...).
PretrainedConfig from_state_spaces(Reader& r) {
  PretrainedConfig out;
  MambaConfig& c = out.config;
  c.d_model = r.get<int64_t>("d_model", 2560);
  c.n_layer = r.get<int64_t>("n_layer", 64);
  c.vocab_size = r.get<int64_t>("vocab_size", 50277);
  c.pad_vocab_size_multiple = r.get<int64_t>("pad_vocab_size_multiple", 8);
  c.tie_embeddings = r.get<bool>("tie_embeddings", true);
  require(r.get<int64_t>("d_intermediate", 0) == 0, r.source, "d_intermediate > 0 (an MLP in each block) is not supported");
  require(r.get<json>("attn_layer_idx", json::array()).empty(), r.source, "attention layers are not supported");
  r.used.insert("attn_cfg");
  const json ssm = r.get<json>("ssm_cfg", json::object());
  require(ssm.is_object(), r.source, "ssm_cfg must be an object");
  Reader s{ssm, r.source + " (ssm_cfg)", {}};
  const std::string layer = s.get<std::string>("layer", "Mamba1");
  require(layer == "Mamba1", r.source, str("ssm_cfg.layer \"", layer, "\" is not supported (Mamba1 only)"));
  c.d_state = s.get<int64_t>("d_state", 16);
  c.d_conv = s.get<int64_t>("d_conv", 4);
  c.expand = s.get<int64_t>("expand", 2);
  s.used.insert("dt_rank");
  c.dt_rank = s.has("dt_rank") && s.j["dt_rank"].is_string() ? 0 : s.get<int64_t>("dt_rank", 0);
  c.dt_min = s.get<double>("dt_min", c.dt_min);
  c.dt_max = s.get<double>("dt_max", c.dt_max);
  c.dt_init_floor = s.get<double>("dt_init_floor", c.dt_init_floor);
  c.conv_bias = s.get<bool>("conv_bias", true);
  c.bias = s.get<bool>("bias", false);
  for (const char* init_only : {"dt_init", "dt_scale", "use_fast_path", "layer_idx"}) s.used.insert(init_only);
  for (const std::string& key : s.unknown()) out.unknown_keys.push_back("ssm_cfg." + key);
  return out;
}
}  // namespace

PretrainedConfig parse_pretrained_config(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(str("config ", source, ": not valid JSON (", e.what(), ")"));
  }
  require(j.is_object(), source, "not a JSON object");
  Reader r{j, source, {}};
  const std::string type = r.get<std::string>("model_type", "mamba");
  require(type == "mamba", source, str("model_type \"", type, "\" is not supported (only \"mamba\", Mamba-1)"));
  require(r.get<bool>("rms_norm", true), source, "rms_norm false (LayerNorm) is not supported");
  const bool transformers_keys = j.contains("hidden_size") || j.contains("model_type");
  require(transformers_keys || j.contains("d_model"), source,
          "has neither transformers' keys (hidden_size, ...) nor the original ones (d_model, ...)");
  PretrainedConfig out = transformers_keys ? from_transformers(r) : from_state_spaces(r);
  std::vector<std::string> unknown = r.unknown();
  out.unknown_keys.insert(out.unknown_keys.begin(), unknown.begin(), unknown.end());
  require(out.config.tie_embeddings, source, "untied embeddings (a separate lm_head) are not supported");
  try {
    out.config.validate();
  } catch (const Error& e) {
    throw Error(str("config ", source, ": ", e.what()));
  }
  return out;
}

}  // namespace mg::mamba
