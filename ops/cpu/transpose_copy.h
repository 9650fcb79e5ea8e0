#pragma once
#include "tensor/tensor.h"

namespace mg::cpu {

// dst = src for the layout changes a transpose makes: dst contiguous, same dtype and shape, and
// src contiguous along some dimension p other than the last. The elementwise loop would then read
// or write with a large stride on every element; this copies 64 x 16 tiles of the (p, last) plane
// instead, so both sides stay in cache. Returns false (doing nothing) for any other layout.
bool transpose_copy_cpu(const Tensor& dst, const Tensor& src);

}  // namespace mg::cpu
