#pragma once
// Flag validators for the subcommands, with plain messages: CLI11 2.1's own PositiveNumber prints
// its range as "0.000000 to 1797693134862315708145..." and its unsigned parse wraps "-1" around.
#include <CLI/CLI.hpp>
#include <cmath>
#include <string>

namespace mg::apps {

// A finite number > 0, e.g. a learning rate.
inline CLI::Validator positive_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value) || !(value > 0) || !std::isfinite(value))
          return "must be a positive number, got " + text;
        return {};
      },
      "POSITIVE");
}

// Digits only, e.g. a seed: "-1" is refused instead of becoming 2^64 - 1.
inline CLI::Validator non_negative_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
          return "must be a non-negative integer, got " + text;
        return {};
      },
      "");
}

}  // namespace mg::apps
