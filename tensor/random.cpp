#include "tensor/random.h"

#include <cmath>

#include "tensor/error.h"

namespace mg {

namespace {
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// This thread's GeneratorRedirect, if any: draws from redirect_from come from redirect_to.
thread_local const Generator* redirect_from = nullptr;
thread_local Generator* redirect_to = nullptr;
}  // namespace

GeneratorRedirect::GeneratorRedirect(const Generator& from, Generator& to)
    : previous_from_(redirect_from), previous_to_(redirect_to) {
  MG_CHECK(&from != &to, "GeneratorRedirect: a generator cannot be redirected to itself");
  redirect_from = &from;
  redirect_to = &to;
}

GeneratorRedirect::~GeneratorRedirect() {
  redirect_from = previous_from_;
  redirect_to = previous_to_;
}

void Generator::manual_seed(uint64_t seed) {
  for (auto& word : state_) word = splitmix64(seed);
}

uint64_t Generator::next_u64() {
  if (redirect_from == this) [[unlikely]] return redirect_to->next_u64();
  uint64_t result = rotl(state_[1] * 5, 7) * 9;
  uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

double Generator::next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::next_normal() {
  // Box-Muller; 1 - u keeps the log argument in (0, 1].
  double u1 = 1.0 - next_double();
  double u2 = next_double();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

int64_t Generator::next_int(int64_t low, int64_t high) {
  MG_CHECK(low < high, "randint: empty range [", low, ", ", high, ")");
  // Unsigned arithmetic: the range may not fit in int64 (e.g. [-2^62, 2^63 - 1)).
  uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  uint64_t limit = UINT64_MAX - UINT64_MAX % range;  // rejection keeps it unbiased
  uint64_t x;
  do x = next_u64(); while (x >= limit);
  return static_cast<int64_t>(static_cast<uint64_t>(low) + x % range);
}

Generator& default_generator() {
  static Generator generator(0);
  return generator;
}

}  // namespace mg
