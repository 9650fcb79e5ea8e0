#pragma once
// Learning-rate schedule: linear warmup, then cosine decay to a floor (as nanoGPT's get_lr).
#include <cstdint>

namespace mg::nn {

struct WarmupCosineSchedule {
  double peak_lr = 1e-3;
  double min_lr = 1e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;  // the step at which min_lr is reached (warmup included)

  // The lr for `step` (0-based, the number of updates done before this one):
  //   step < warmup_steps:            peak_lr * (step + 1) / warmup_steps   (never 0)
  //   warmup_steps <= step < total:   min_lr + (peak_lr - min_lr) * (1 + cos(pi * progress)) / 2,
  //                                   progress = (step - warmup_steps) / (total_steps - warmup_steps)
  //   step >= total_steps:            min_lr
  double lr(int64_t step) const;
};

}  // namespace mg::nn
