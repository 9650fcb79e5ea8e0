#include "models/gpt/config.h"

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "tensor/json_integer.h"
#include "tensor/error.h"

namespace mg::gpt {

namespace {
using nlohmann::json;

template <class Fn>
void for_each_field(GPTConfig& c, Fn&& fn) {
  fn("vocab_size", c.vocab_size);
  fn("n_positions", c.n_positions);
  fn("n_embd", c.n_embd);
  fn("n_layer", c.n_layer);
  fn("n_head", c.n_head);
  fn("layer_norm_epsilon", c.layer_norm_epsilon);
  fn("dropout", c.dropout);
}
}  // namespace

int64_t GPTConfig::num_parameters() const {
  // A config read from a file may describe more than int64 counts: say so instead of overflowing.
  const double c = static_cast<double>(n_embd), estimate = static_cast<double>(vocab_size) * c +
                   static_cast<double>(n_positions) * c + static_cast<double>(n_layer) * (12 * c * c + 13 * c) + 2 * c;
  if (!(std::abs(estimate) < 4e18)) return INT64_MAX;
  const int64_t C = n_embd;
  return vocab_size * C + n_positions * C + n_layer * (12 * C * C + 13 * C) + 2 * C;
}

void GPTConfig::validate() const {
  for (auto [name, v] : {std::pair{"vocab_size", vocab_size}, {"n_positions", n_positions}, {"n_embd", n_embd},
                         {"n_layer", n_layer}, {"n_head", n_head}})
    MG_CHECK(v > 0, "GPTConfig: ", name, " must be positive, got ", v);
  MG_CHECK(n_embd % n_head == 0, "GPTConfig: n_embd (", n_embd, ") must be a multiple of n_head (", n_head, ")");
  MG_CHECK(layer_norm_epsilon > 0, "GPTConfig: layer_norm_epsilon must be positive, got ", layer_norm_epsilon);
  MG_CHECK(dropout >= 0 && dropout < 1, "GPTConfig: dropout must be in [0, 1), got ", dropout);
}

std::string GPTConfig::to_json() const {
  json j = json::object();
  GPTConfig copy = *this;
  for_each_field(copy, [&](const char* name, auto& value) { j[name] = value; });
  return j.dump(2);
}

GPTConfig GPTConfig::from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  MG_CHECK(!j.is_discarded(), "GPTConfig: invalid JSON");
  MG_CHECK(j.is_object(), "GPTConfig: expected a JSON object, got ", j.type_name());
  GPTConfig c;
  for (const auto& item : j.items()) {
    // (named, not a structured binding: the lambda captures them, which clang 14 cannot)
    const std::string key = item.key();
    const json& value = item.value();
    bool found = false;
    for_each_field(c, [&](const char* name, auto& field) {
      if (key != name) return;
      found = true;
      // Integer fields take JSON integers within their range only (tensor/json_integer.h).
      using Field = std::decay_t<decltype(field)>;
      if constexpr (std::is_integral_v<Field>)
        MG_CHECK(!value.is_number() || json_integer_fits<Field>(value), "GPTConfig: field \"", name,
                 "\" must be an integer within int64, got ", value.dump());
      try {
        value.get_to(field);
      } catch (const json::exception&) {
        throw Error(str("GPTConfig: field \"", name, "\" has the wrong type (", value.dump(), ")"));
      }
    });
    MG_CHECK(found, "GPTConfig: unknown field \"", key, "\"");
  }
  c.validate();
  return c;
}

}  // namespace mg::gpt
