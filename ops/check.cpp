#include "ops/check.h"

namespace mg {

namespace {
std::string describe(const TensorList& tensors, bool with_device) {
  std::string out;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    out += (out.empty() ? "" : ", ") + str(t.shape(), " ", t.dtype());
    if (with_device) out += str(" on ", t.device());
  }
  return out;
}
}  // namespace

void check_same_device(const char* op, const TensorList& tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!first) first = &t;
    MG_CHECK(t.device() == first->device(), op, ": expected all tensors on one device, got ", describe(tensors, true));
  }
}

void check_same_dtype(const char* op, const TensorList& tensors) {
  const Tensor* first = nullptr;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    if (!first) first = &t;
    MG_CHECK(t.dtype() == first->dtype(), op, ": expected one dtype, got ", describe(tensors, false));
  }
}

void check_floating(const char* op, const Tensor& t) {
  MG_CHECK(is_floating(t.dtype()), op, ": expected a floating-point tensor, got ", t.shape(), " ", t.dtype());
}

void check_dim(const char* op, const char* name, const Tensor& t, int64_t ndim) {
  MG_CHECK(t.dim() == ndim, op, ": expected ", name, " with ", ndim, " dimensions, got shape ", t.shape());
}

void check_floating_inputs(const char* op, const TensorList& tensors) {
  check_same_device(op, tensors);
  check_same_dtype(op, tensors);
  for (const Tensor& t : tensors)
    if (t.defined()) check_floating(op, t);
}

}  // namespace mg
