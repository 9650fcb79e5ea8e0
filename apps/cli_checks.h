#pragma once
// Flag validators with short messages ("--lr: must be positive, got -1"), where CLI11's
// PositiveNumber would print the whole range of a double.
#include <CLI/CLI.hpp>
#include <string>

namespace mg::apps {

inline CLI::Validator number_check(bool allow_zero) {
  return CLI::Validator(
      [allow_zero](std::string& value) -> std::string {
        try {
          size_t used = 0;
          double v = std::stod(value, &used);
          if (used != value.size()) return "expected a number, got " + value;
          if (allow_zero ? v >= 0 : v > 0) return "";
        } catch (const std::exception&) {
          return "expected a number, got " + value;
        }
        return std::string(allow_zero ? "must be >= 0" : "must be positive") + ", got " + value;
      },
      allow_zero ? "NONNEGATIVE" : "POSITIVE");
}
inline const CLI::Validator kPositive = number_check(false);
inline const CLI::Validator kNonNegative = number_check(true);

}  // namespace mg::apps
