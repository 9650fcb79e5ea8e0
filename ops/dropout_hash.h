#pragma once
// Dropout's random numbers as a function of (seed, position): element i of a dropout mask is kept
// when dropout_uniform(seed, i) >= p. A counter-based stream needs no state per element, so the
// CPU loop and the CUDA kernel compute the same mask for the same seed, in any order and on any
// number of threads; the op draws one seed per call from the caller's Generator.
#include <cstdint>

#if defined(__CUDACC__)
#define MG_HOST_DEVICE __host__ __device__
#else
#define MG_HOST_DEVICE
#endif

namespace mg {

// splitmix64's finalizer: a bijection of 64-bit integers whose output bits each depend on every
// input bit (Steele, Lea & Flood 2014).
MG_HOST_DEVICE inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 53 random bits; the position is mixed before the seed is added, so
// nearby seeds do not give shifted copies of one stream.
MG_HOST_DEVICE inline double dropout_uniform(uint64_t seed, uint64_t i) {
  return static_cast<double>(mix64(seed + mix64(i)) >> 11) * 0x1.0p-53;
}

MG_HOST_DEVICE inline bool dropout_keeps(uint64_t seed, uint64_t i, double p) { return dropout_uniform(seed, i) >= p; }

}  // namespace mg
