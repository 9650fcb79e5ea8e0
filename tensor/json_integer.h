#pragma once
// JSON numbers into C++ integers without undefined behaviour. nlohmann's get<int64_t>() converts
// a JSON double as C++ does: 2.5 becomes 2, and 1e300 or 8e19 (outside int64) is undefined
// behaviour (found by tests/fuzz/). Every reader of integers from a file checks this first.
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace mg {

// True if `v` is a JSON integer that T holds exactly (a double, or an integer out of range, is not).
template <class T>
bool json_integer_fits(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
  const int64_t x = v.get<int64_t>();
  if constexpr (std::is_signed_v<T>)
    return x >= static_cast<int64_t>(std::numeric_limits<T>::min()) && x <= static_cast<int64_t>(std::numeric_limits<T>::max());
  else
    return x >= 0;
}

}  // namespace mg
