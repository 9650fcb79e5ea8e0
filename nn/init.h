#pragma once
// Parameter initialization, in place, from an explicit generator (torch.nn.init's functions).
// Each one draws a fresh CPU tensor in row-major order and copies it into `t` under NoGradGuard,
// so the values do not depend on t's device, and returns t.
#include <cmath>
#include <utility>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mg::nn::init {

Tensor normal_(const Tensor& t, double mean, double std, Generator& gen);
Tensor uniform_(const Tensor& t, double low, double high, Generator& gen);
Tensor constant_(const Tensor& t, double value);
Tensor zeros_(const Tensor& t);
Tensor ones_(const Tensor& t);

// (fan_in, fan_out) of a weight (out, in, *kernel): fan_in = in * prod(kernel), fan_out =
// out * prod(kernel). Needs at least 2 dimensions.
std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t);

// He (Kaiming) uniform in fan_in mode with the leaky-ReLU gain: U(-bound, bound) with
//   gain = sqrt(2 / (1 + a^2)),  bound = gain * sqrt(3 / fan_in).
// `a` defaults to sqrt(5), which makes bound = 1 / sqrt(fan_in): the default init of PyTorch's
// nn.Linear and nn.Conv1d weights (note torch.nn.init.kaiming_uniform_'s own default is a = 0).
Tensor kaiming_uniform_(const Tensor& t, Generator& gen, double a = std::sqrt(5.0));

}  // namespace mg::nn::init
