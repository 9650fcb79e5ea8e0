#pragma once
// The selective scan splits a sequence into segments scanned at once when batch x channels alone
// would leave the GPU idle (cuda/selective_scan.cu decides how many, from the shapes alone).
// Tests and benchmarks fix the count while a ScopedScanSegments lives (1: never split; 0: the
// kernels' own choice). Like the TF32 switch, a process-wide setting, not for concurrent use.
// No CUDA types: tests and benchmarks built without CUDA include it too.
#include <cstdint>

namespace mg::cuda {

class ScopedScanSegments {
 public:
  explicit ScopedScanSegments(int64_t count) : previous_(setting()) { setting() = count; }
  ~ScopedScanSegments() { setting() = previous_; }
  ScopedScanSegments(const ScopedScanSegments&) = delete;
  ScopedScanSegments& operator=(const ScopedScanSegments&) = delete;
  static int64_t count() { return setting(); }

 private:
  static int64_t& setting() {
    static int64_t count = 0;
    return count;
  }
  int64_t previous_;
};

}  // namespace mg::cuda
