#include "models/mamba/config.h"

#include <cstdint>
#include <fstream>
#include <type_traits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/json_integer.h"
#include "tensor/error.h"

namespace mg::mamba {

namespace {
using nlohmann::json;

// The fields, once: name and a getter/setter pair, used by both directions of the JSON mapping.
template <class Fn>
void for_each_field(MambaConfig& c, Fn&& fn) {
  fn("d_model", c.d_model);
  fn("n_layer", c.n_layer);
  fn("vocab_size", c.vocab_size);
  fn("d_state", c.d_state);
  fn("d_conv", c.d_conv);
  fn("expand", c.expand);
  fn("dt_rank", c.dt_rank);
  fn("dt_min", c.dt_min);
  fn("dt_max", c.dt_max);
  fn("dt_init_floor", c.dt_init_floor);
  fn("conv_bias", c.conv_bias);
  fn("bias", c.bias);
  fn("pad_vocab_size_multiple", c.pad_vocab_size_multiple);
  fn("tie_embeddings", c.tie_embeddings);
  fn("norm_eps", c.norm_eps);
}
}  // namespace

int64_t MambaConfig::padded_vocab_size() const {
  int64_t m = std::max<int64_t>(pad_vocab_size_multiple, 1);
  return (vocab_size + m - 1) / m * m;
}

int64_t MambaConfig::num_parameters() const {
  constexpr int64_t kTooMany = INT64_MAX;
  bool overflow = false;
  auto mul = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    overflow |= __builtin_mul_overflow(a, b, &r);
    return r;
  };
  auto add = [&](int64_t a, int64_t b) {
    int64_t r = 0;
    overflow |= __builtin_add_overflow(a, b, &r);
    return r;
  };
  const int64_t d = d_model, Di = mul(expand, d_model), N = d_state, K = d_conv, R = resolved_dt_rank();
  int64_t block = mul(d, mul(2, Di));                         // in_proj
  block = add(block, mul(Di, K));                             // conv1d
  block = add(block, mul(Di, add(R, mul(2, N))));             // x_proj
  block = add(block, add(mul(R, Di), Di));                    // dt_proj, with its bias
  block = add(block, mul(Di, d));                             // out_proj
  block = add(block, add(mul(Di, N), Di));                    // A_log, D
  block = add(block, d);                                      // the block's norm
  if (bias) block = add(block, add(mul(2, Di), d));           // in_proj's and out_proj's biases
  if (conv_bias) block = add(block, Di);
  const int64_t total = add(mul(n_layer, block), add(mul(padded_vocab_size(), d), d));  // + embeddings, norm_f
  return overflow ? kTooMany : total;
}

void MambaConfig::validate() const {
  auto positive = [](const char* name, int64_t v) {
    MG_CHECK(v > 0, "MambaConfig: ", name, " must be positive, got ", v);
  };
  positive("d_model", d_model);
  positive("n_layer", n_layer);
  positive("vocab_size", vocab_size);
  positive("d_state", d_state);
  positive("d_conv", d_conv);
  positive("expand", expand);
  positive("pad_vocab_size_multiple", pad_vocab_size_multiple);
  MG_CHECK(dt_rank >= 0, "MambaConfig: dt_rank must be >= 0 (0 = auto), got ", dt_rank);
  MG_CHECK(dt_min > 0 && dt_max >= dt_min, "MambaConfig: need 0 < dt_min <= dt_max, got dt_min ", dt_min,
           " and dt_max ", dt_max);
  MG_CHECK(dt_init_floor >= 0, "MambaConfig: dt_init_floor must be >= 0, got ", dt_init_floor);
  MG_CHECK(norm_eps > 0, "MambaConfig: norm_eps must be positive, got ", norm_eps);
  MG_CHECK(tie_embeddings, "MambaConfig: only tie_embeddings = true is supported (the LM head is the embedding)");
}

std::string MambaConfig::to_json() const {
  json j = json::object();
  MambaConfig copy = *this;
  for_each_field(copy, [&](const char* name, auto& value) { j[name] = value; });
  return j.dump(2);
}

MambaConfig MambaConfig::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(str("MambaConfig: invalid JSON: ", e.what()));
  }
  MG_CHECK(j.is_object(), "MambaConfig: expected a JSON object, got ", j.type_name());
  MambaConfig c;
  size_t known = 0;
  for_each_field(c, [&](const char* name, auto& value) {
    if (!j.contains(name)) return;
    ++known;
    const json& v = j.at(name);
    // Integer fields take JSON integers within int64 only: nlohmann would cast 8e19 or 1.5 to an
    // integer as C++ does (8e19 is undefined behaviour; found by tests/fuzz/fuzz_mamba_config).
    using Field = std::decay_t<decltype(value)>;
    bool fits = true;
    if constexpr (std::is_integral_v<Field> && !std::is_same_v<Field, bool>)
      fits = !v.is_number() || json_integer_fits<Field>(v);
    if (!fits) throw Error(str("MambaConfig: field \"", name, "\" must be an integer within int64, got ", v.dump()));
    try {
      v.get_to(value);
    } catch (const json::exception&) {
      throw Error(str("MambaConfig: field \"", name, "\" has the wrong type (", v.dump(), ")"));
    }
  });
  if (known != j.size()) {
    for (const auto& item : j.items()) {
      const std::string key = item.key();  // (the lambda captures it: not a structured binding, for clang)
      bool found = false;
      for_each_field(c, [&](const char* name, auto&) { found = found || key == name; });
      MG_CHECK(found, "MambaConfig: unknown field \"", key, "\"");
    }
  }
  c.validate();
  return c;
}

MambaConfig MambaConfig::load(const std::string& path) {
  std::ifstream in(path);
  MG_CHECK(in.good(), "MambaConfig: cannot open ", path);
  std::stringstream text;
  text << in.rdbuf();
  return from_json(text.str());
}

}  // namespace mg::mamba
