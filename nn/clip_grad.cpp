#include "nn/clip_grad.h"

#include <cmath>
#include <map>

#include "autograd/grad_mode.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/unary.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::nn {

namespace {

double sum_of_squares_cpu(const Tensor& grad) {
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

// The defined gradients, contiguous, all on one device (checked).
TensorList gradients(const TensorList& parameters, const char* op) {
  TensorList grads;
  for (const Tensor& p : parameters) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    MG_CHECK(grads.empty() || g.device() == grads[0].device(), op, ": gradients on ", grads[0].device(), " and ",
             g.device(), "; clip the parameters of each device separately");
    grads.push_back(contiguous(g));
  }
  return grads;
}

// sum of g^2 over every gradient, in double: on the CPU in parameter order; on a GPU by one
// multi-tensor kernel per dtype, without waiting for it.
Tensor total_norm(const TensorList& grads) {
  if (grads.empty() || grads[0].device().is_cpu()) {
    double total = 0;
    for (const Tensor& g : grads) total += sum_of_squares_cpu(g);
    return full({}, std::sqrt(total), {.dtype = DType::Float64});
  }
  const Device device = grads[0].device();
  std::map<DType, TensorList> by_dtype;
  for (const Tensor& g : grads) by_dtype[g.dtype()].push_back(g);
  Tensor total;
  for (const auto& [dtype, list] : by_dtype) {
    Tensor part = empty({}, {.dtype = DType::Float64, .device = device});
    MG_CUDA_DISPATCH(cuda::sum_of_squares(part, list));
    total = total.defined() ? add(total, part) : part;
  }
  return sqrt(total);
}

}  // namespace

Tensor grad_norm(const TensorList& parameters) {
  NoGradGuard no_grad;
  return total_norm(gradients(parameters, "grad_norm"));
}

Tensor clip_grad_norm_(const TensorList& parameters, double max_norm) {
  MG_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be positive, got ", max_norm);
  NoGradGuard no_grad;
  TensorList grads = gradients(parameters, "clip_grad_norm_");
  Tensor norm = total_norm(grads);
  if (grads.empty()) return norm;
  if (norm.device().is_cuda()) {  // the kernel computes the factor from the norm on the GPU
    std::map<DType, TensorList> by_dtype;
    for (const Tensor& p : parameters) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (!g.is_contiguous()) Tensor(p).set_grad(g = contiguous(g));  // the kernel scales contiguous memory
      by_dtype[g.dtype()].push_back(g);
    }
    for (const auto& [dtype, list] : by_dtype) MG_CUDA_DISPATCH(cuda::clip_inplace(list, norm, max_norm));
    return norm;
  }
  const double total = norm.item<double>();
  const double clip_coef = max_norm / (total + 1e-6);
  if (clip_coef < 1.0 || std::isnan(clip_coef)) {
    for (const Tensor& p : parameters) {
      Tensor g = p.grad();
      if (g.defined()) mul_inplace(g, clip_coef);
    }
  }
  return norm;
}

}  // namespace mg::nn
