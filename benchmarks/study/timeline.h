#pragma once
// Timing work on the CPU or a GPU with one interface. On a GPU, work is queued on the device's
// stream and the host goes on (cuda/runtime.h), so a host clock around it measures the queueing,
// not the work: there the marks are CUDA events recorded in the stream, and the time between two
// marks is the GPU's (seconds() waits for the later mark). On the CPU an op's work is done when
// the call returns, and the host clock is the timeline.
#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "cuda/runtime.h"
#include "tensor/device.h"

namespace mg::study {

class Timeline {
 public:
  explicit Timeline(Device device) : device_(device) {}

  // Marks the point after all the work queued so far (no wait on a GPU).
  void mark() {
    if (device_.is_cuda()) {
      events_.push_back(std::make_unique<cuda::Event>(device_.index));
      events_.back()->record();
    } else {
      times_.push_back(std::chrono::steady_clock::now());
    }
  }
  size_t marks() const { return device_.is_cuda() ? events_.size() : times_.size(); }
  // Seconds between marks `from` and `to` (indices in the order marked).
  double seconds(size_t from, size_t to) const {
    if (device_.is_cuda()) return cuda::Event::elapsed_ms(*events_[from], *events_[to]) / 1000.0;
    return std::chrono::duration<double>(times_[to] - times_[from]).count();
  }

 private:
  Device device_;
  std::vector<std::unique_ptr<cuda::Event>> events_;
  std::vector<std::chrono::steady_clock::time_point> times_;
};

// The median (the mean of the middle two for an even count); values must not be empty.
inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace mg::study
