#include "nn/init.h"

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::nn::init {

namespace {

// t = values (a CPU tensor of t's shape), without recording a graph.
Tensor assign(const Tensor& t, const Tensor& values) {
  NoGradGuard no_grad;
  Tensor dst = t;
  copy_inplace(dst, to_device(values, t.device()));
  return t;
}

void check_floating_target(const char* fn, const Tensor& t) {
  MG_CHECK(t.defined(), "init.", fn, ": the tensor is undefined");
  MG_CHECK(is_floating(t.dtype()), "init.", fn, ": expected a floating-point tensor, got ", t.shape(), " ", t.dtype());
}

}  // namespace

Tensor normal_(const Tensor& t, double mean, double std, Generator& gen) {
  check_floating_target("normal_", t);
  MG_CHECK(std >= 0, "init.normal_: std must be non-negative, got ", std);
  Tensor values = randn(t.shape(), gen, {.dtype = DType::Float64});
  NoGradGuard no_grad;
  return assign(t, add(mul(values, std), mean));
}

Tensor uniform_(const Tensor& t, double low, double high, Generator& gen) {
  check_floating_target("uniform_", t);
  MG_CHECK(low <= high, "init.uniform_: low ", low, " is greater than high ", high);
  return assign(t, uniform(t.shape(), low, high, gen, {.dtype = DType::Float64}));
}

Tensor constant_(const Tensor& t, double value) {
  check_floating_target("constant_", t);
  return assign(t, full(t.shape(), value, {.dtype = t.dtype()}));
}

Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

std::pair<int64_t, int64_t> fan_in_and_fan_out(const Tensor& t) {
  MG_CHECK(t.dim() >= 2, "init: fan in and fan out need a tensor with at least 2 dimensions, got shape ", t.shape());
  int64_t receptive_field = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive_field *= t.size(d);
  return {t.size(1) * receptive_field, t.size(0) * receptive_field};
}

Tensor kaiming_uniform_(const Tensor& t, Generator& gen, double a) {
  check_floating_target("kaiming_uniform_", t);
  const int64_t fan_in = fan_in_and_fan_out(t).first;
  MG_CHECK(fan_in > 0, "init.kaiming_uniform_: fan_in is zero for shape ", t.shape());
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in));
  return uniform_(t, -bound, bound, gen);
}

}  // namespace mg::nn::init
