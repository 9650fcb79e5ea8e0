#pragma once
// Tensor factories. Random ones draw from an explicit Generator (default_generator() if omitted).
#include <initializer_list>
#include <vector>

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mg {

Tensor empty(const Shape& shape, TensorOptions options = {});
Tensor zeros(const Shape& shape, TensorOptions options = {});
Tensor ones(const Shape& shape, TensorOptions options = {});
Tensor full(const Shape& shape, double value, TensorOptions options = {});
Tensor empty_like(const Tensor& t);  // same shape, dtype and device; contiguous
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// [start, end) in steps of `step`; int64 unless options say otherwise.
Tensor arange(double start, double end, double step = 1.0, TensorOptions options = {.dtype = DType::Int64});
Tensor arange(int64_t end, TensorOptions options = {.dtype = DType::Int64});

Tensor rand(const Shape& shape, Generator& gen, TensorOptions options = {});   // uniform [0, 1)
Tensor randn(const Shape& shape, Generator& gen, TensorOptions options = {});  // standard normal
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, TensorOptions options = {});
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen,
               TensorOptions options = {.dtype = DType::Int64});
Tensor rand(const Shape& shape, TensorOptions options = {});
Tensor randn(const Shape& shape, TensorOptions options = {});

// From host values; the dtype follows T unless options.dtype differs (then values are converted).
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options = {.dtype = dtype_of<T>()});
// tensor({1.f, 2.f, 3.f}) is a 1-D float32 tensor; tensor({{1, 2}, {3, 4}}) a 2-D one.
Tensor tensor(std::initializer_list<float> values, TensorOptions options = {});
Tensor tensor(std::initializer_list<std::initializer_list<float>> rows, TensorOptions options = {});
Tensor tensor(std::initializer_list<double> values, TensorOptions options = {.dtype = DType::Float64});
Tensor tensor(std::initializer_list<int64_t> values, TensorOptions options = {.dtype = DType::Int64});
Tensor scalar_tensor(double value, TensorOptions options = {});

}  // namespace mg
