#pragma once
// gradcheck: compares the analytic gradient of fn at `inputs` with central finite differences.
//
// fn maps the inputs to one tensor y. A fixed random weight v (shaped like y) turns it into the
// scalar f(x) = sum(v * y); then for every element x_j of every input that requires grad
//   analytic_j = (v^T J)_j   from one backward pass with grad_output v
//   numeric_j  = (f(x + eps e_j) - f(x - eps e_j)) / (2 eps)
// and |analytic_j - numeric_j| <= atol + rtol * |numeric_j| must hold. Inputs are perturbed
// through their own strides, so non-contiguous inputs are checked as non-contiguous.
// Inputs that require grad must be float64 CPU tensors; others (int64 targets, masks) are constants.
#include <functional>
#include <string>

#include "tensor/tensor.h"

namespace mg {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-3;
  uint64_t seed = 0;  // of the random weight v
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the first mismatch: input, element, analytic and numeric values
  double max_abs_error = 0;
  explicit operator bool() const { return ok; }
};

using GradcheckFn = std::function<Tensor(const TensorList&)>;
GradcheckResult gradcheck(const GradcheckFn& fn, const TensorList& inputs, GradcheckOptions options = {});

}  // namespace mg
