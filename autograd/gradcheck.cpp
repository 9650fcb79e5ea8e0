#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// Storage offsets (in elements) of a view's elements, row-major.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offsets;
  offsets.reserve(t.numel());
  Shape index(t.dim(), 0);
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t offset = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) offset += index[d] * t.strides()[d];
    offsets.push_back(offset);
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++index[d] < t.size(d)) break;
      index[d] = 0;
    }
  }
  return offsets;
}

double weighted_sum(const Tensor& y, const std::vector<double>& v) {
  std::vector<double> values = y.to_vector<double>();
  double total = 0;
  for (size_t i = 0; i < values.size(); ++i) total += v[i] * values[i];
  return total;
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& fn, const TensorList& inputs, GradcheckOptions options) {
  // Fresh leaves that share the inputs' storage and strides.
  TensorList leaves;
  for (const Tensor& input : inputs) {
    if (!input.defined()) {
      leaves.push_back(input);
      continue;
    }
    Tensor leaf = input.detach();
    if (input.requires_grad()) {
      MG_CHECK(input.dtype() == DType::Float64 && input.device().is_cpu(),
               "gradcheck: inputs that require grad must be float64 CPU tensors, got ", input.dtype(), " on ",
               input.device());
      leaf.requires_grad_(true);
    }
    leaves.push_back(leaf);
  }

  Tensor y = fn(leaves);
  MG_CHECK(y.defined() && y.requires_grad(), "gradcheck: fn's output does not depend on any input that requires grad");
  Generator gen(options.seed);
  Tensor v = randn(y.shape(), gen, {.dtype = y.dtype()});
  std::vector<double> v_values = v.to_vector<double>();
  y.backward(v);

  GradcheckResult result;
  NoGradGuard no_grad;
  for (size_t i = 0; i < leaves.size(); ++i) {
    const Tensor& leaf = leaves[i];
    if (!leaf.defined() || !leaf.requires_grad()) continue;
    Tensor grad = leaf.grad();
    std::vector<double> analytic = grad.defined() ? grad.to_vector<double>() : std::vector<double>(leaf.numel(), 0.0);
    double* base = static_cast<double*>(leaf.impl()->storage->data());
    std::vector<int64_t> offsets = element_offsets(leaf);
    for (size_t j = 0; j < offsets.size(); ++j) {
      double saved = base[offsets[j]];
      base[offsets[j]] = saved + options.eps;
      double f_plus = weighted_sum(fn(leaves), v_values);
      base[offsets[j]] = saved - options.eps;
      double f_minus = weighted_sum(fn(leaves), v_values);
      base[offsets[j]] = saved;
      double numeric = (f_plus - f_minus) / (2 * options.eps);
      double error = std::abs(analytic[j] - numeric);
      result.max_abs_error = std::max(result.max_abs_error, error);
      if (result.ok && !(error <= options.atol + options.rtol * std::abs(numeric))) {
        result.ok = false;
        result.message = str("gradcheck: input ", i, " (shape ", leaf.shape(), ") element ", j, ": analytic ",
                             analytic[j], " vs numeric ", numeric, " (error ", error, ")");
      }
    }
  }
  return result;
}

}  // namespace mg
