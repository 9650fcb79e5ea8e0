#include "nn/clip_grad.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/reduce.h"
#include "ops/view.h"

namespace mg::nn {

namespace {

double sum_of_squares(const Tensor& grad) {
  if (!grad.device().is_cpu()) {  // on a GPU: with ops, one scalar back to the host
    Tensor g = to_dtype(grad, DType::Float64);
    return sum(mul(g, g)).item<double>();
  }
  Tensor g = contiguous(grad);
  return dispatch_floating(g.dtype(), "clip_grad_norm_", [&]<class T>() {
    const T* data = g.data<T>();
    double lanes[8] = {};  // 8 partial sums in a fixed order: vectorizable, and the same bits every time
    int64_t i = 0;
    for (; i + 8 <= g.numel(); i += 8)
      for (int k = 0; k < 8; ++k) lanes[k] += static_cast<double>(data[i + k]) * data[i + k];
    double total = 0;
    for (int k = 0; k < 8; ++k) total += lanes[k];
    for (; i < g.numel(); ++i) total += static_cast<double>(data[i]) * data[i];
    return total;
  });
}

}  // namespace

double grad_norm(const TensorList& parameters) {
  NoGradGuard no_grad;
  double total = 0;
  for (const Tensor& p : parameters) {
    Tensor g = p.grad();
    if (g.defined()) total += sum_of_squares(g);
  }
  return std::sqrt(total);
}

double clip_grad_norm_(const TensorList& parameters, double max_norm) {
  MG_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be positive, got ", max_norm);
  const double total_norm = grad_norm(parameters);
  const double clip_coef = max_norm / (total_norm + 1e-6);
  if (clip_coef < 1.0 || std::isnan(clip_coef)) {
    NoGradGuard no_grad;
    for (const Tensor& p : parameters) {
      Tensor g = p.grad();
      if (g.defined()) mul_inplace(g, clip_coef);
    }
  }
  return total_norm;
}

}  // namespace mg::nn
