#include "nn/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "tensor/error.h"

namespace mg::nn {

double WarmupCosineSchedule::lr(int64_t step) const {
  MG_CHECK(step >= 0, "WarmupCosineSchedule: step must be non-negative, got ", step);
  MG_CHECK(warmup_steps >= 0 && total_steps >= warmup_steps, "WarmupCosineSchedule: need 0 <= warmup_steps (",
           warmup_steps, ") <= total_steps (", total_steps, ")");
  if (step < warmup_steps) return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (step >= total_steps) return min_lr;
  const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace mg::nn
