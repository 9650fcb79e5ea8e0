#pragma once
// One explicit random generator: xoshiro256** seeded through splitmix64. Its integer stream and
// the float conversions below are defined here, not by the standard library, so the same seed
// gives the same numbers with every compiler and on every machine.
#include <array>
#include <cstdint>

namespace mg {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed);

  uint64_t next_u64();
  double next_double();                   // uniform in [0, 1), 53 random bits
  double next_normal();                   // standard normal (Box-Muller, one value per call)
  int64_t next_int(int64_t low, int64_t high);  // uniform in [low, high), unbiased

  // The full state, for checkpoints: restoring it resumes the exact same stream.
  using State = std::array<uint64_t, 4>;
  State state() const { return state_; }
  void set_state(const State& state) { state_ = state; }

 private:
  State state_{};
};

// While alive, this thread's draws from `from` come from `to` instead; other threads' draws are
// unaffected. The training step runs the halves of a batch on two threads at once
// (apps/common/train_step.h): each half draws the model's dropout masks from its own generator,
// seeded from the model's, so the masks do not depend on which half runs first, and two threads
// never advance one generator's state at once. Scopes nest (the inner one wins while alive).
class GeneratorRedirect {
 public:
  GeneratorRedirect(const Generator& from, Generator& to);
  ~GeneratorRedirect();
  GeneratorRedirect(const GeneratorRedirect&) = delete;
  GeneratorRedirect& operator=(const GeneratorRedirect&) = delete;

 private:
  const Generator* previous_from_;
  Generator* previous_to_;
};

// The process-wide default generator (seed 0 until manual_seed is called on it).
Generator& default_generator();

}  // namespace mg
