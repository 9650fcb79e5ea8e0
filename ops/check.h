#pragma once
// Input checks shared by ops. Each throws mg::Error naming the op and the offending shapes.
#include "tensor/tensor.h"

namespace mg {

// All defined tensors are on the same device.
void check_same_device(const char* op, const TensorList& tensors);
// All defined tensors have the same dtype.
void check_same_dtype(const char* op, const TensorList& tensors);
void check_floating(const char* op, const Tensor& t);
void check_dim(const char* op, const char* name, const Tensor& t, int64_t ndim);
// Devices agree, dtypes agree and are floating: the usual preamble of a floating-point op.
void check_floating_inputs(const char* op, const TensorList& tensors);

}  // namespace mg
