#pragma once
// Other work on the machine, for benchmarks of how training copes with it (a laptop, a shared
// server): `count` processes that spin on a core each until the object is destroyed.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

namespace mg::bench {

class BackgroundLoad {
 public:
  explicit BackgroundLoad(int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      pid_t pid = ::fork();
      if (pid == 0)  // the child only loops (no allocation, no locks: safe after fork) until killed
        for (uint64_t spin = 0;; ++spin) benchmark::DoNotOptimize(spin);
      if (pid > 0) pids_.push_back(pid);
    }
  }
  ~BackgroundLoad() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }
  BackgroundLoad(const BackgroundLoad&) = delete;
  BackgroundLoad& operator=(const BackgroundLoad&) = delete;

 private:
  std::vector<pid_t> pids_;
};

}  // namespace mg::bench
