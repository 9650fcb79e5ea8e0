#include "tensor/factory.h"

#include <cmath>

#include "tensor/device_backend.h"

namespace mg {

namespace {
// Fills a host buffer with fn(i) converted to the options' dtype, then moves it to the device.
template <class Fn>
Tensor generate(const Shape& shape, TensorOptions options, Fn&& fn) {
  for (int64_t size : shape) MG_CHECK(size >= 0, "tensor factory: negative size in shape ", shape);
  Tensor host = empty(shape, options.with_device(Device::cpu()).with_requires_grad(false));
  int64_t n = host.numel();
  dispatch_all(options.dtype, [&]<class T>() {
    T* p = host.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(fn(i));
  });
  Tensor out = options.device.is_cpu() ? host : host.to(options.device);
  if (options.requires_grad) out.requires_grad_(true);
  return out;
}
}  // namespace

Tensor empty(const Shape& shape, TensorOptions options) {
  for (int64_t size : shape) MG_CHECK(size >= 0, "empty: negative size in shape ", shape);
  std::shared_ptr<Storage> storage;
  try {
    storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(options.dtype), options.device);
  } catch (const OutOfMemoryError& e) {  // say which tensor did not fit
    throw OutOfMemoryError(str(e.what(), "; the tensor: ", shape, " ", options.dtype));
  }
  Tensor t(std::make_shared<TensorImpl>(std::move(storage), shape, contiguous_strides(shape), 0, options.dtype));
  if (options.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) {
  Tensor t = empty(shape, options.with_requires_grad(false));
  zero_bytes(t.raw_data(), t.device(), t.nbytes());
  if (options.requires_grad) t.requires_grad_(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions options) {
#ifdef MG_WITH_CUDA
  if (options.device.is_cuda()) {  // a kernel fills it: no copy from the host, nothing to wait for
    Tensor t = empty(shape, options.with_requires_grad(false));
    cuda::fill(t, value);
    if (options.requires_grad) t.requires_grad_(true);
    return t;
  }
#endif
  return generate(shape, options, [&](int64_t) { return value; });
}
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }

static TensorOptions like(const Tensor& t) { return {.dtype = t.dtype(), .device = t.device()}; }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), like(t)); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), like(t)); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), like(t)); }
Tensor full_like(const Tensor& t, double value) { return full(t.shape(), value, like(t)); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  MG_CHECK(step != 0, "arange: step must be non-zero");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  return generate({n}, options, [&](int64_t i) { return start + static_cast<double>(i) * step; });
}
Tensor arange(int64_t end, TensorOptions options) { return arange(0.0, static_cast<double>(end), 1.0, options); }

Tensor rand(const Shape& shape, Generator& gen, TensorOptions options) {
  return generate(shape, options, [&](int64_t) { return gen.next_double(); });
}
Tensor randn(const Shape& shape, Generator& gen, TensorOptions options) {
  return generate(shape, options, [&](int64_t) { return gen.next_normal(); });
}
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, TensorOptions options) {
  return generate(shape, options, [&](int64_t) { return low + (high - low) * gen.next_double(); });
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, TensorOptions options) {
  return generate(shape, options, [&](int64_t) { return static_cast<double>(gen.next_int(low, high)); });
}
Tensor rand(const Shape& shape, TensorOptions options) { return rand(shape, default_generator(), options); }
Tensor randn(const Shape& shape, TensorOptions options) { return randn(shape, default_generator(), options); }

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options) {
  MG_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
           " values do not fill shape ", shape);
  if constexpr (std::is_same_v<T, int64_t>) {
    return generate(shape, options, [&](int64_t i) { return values[i]; });
  } else {
    return generate(shape, options, [&](int64_t i) { return static_cast<double>(values[i]); });
  }
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, TensorOptions);

Tensor tensor(std::initializer_list<float> values, TensorOptions options) {
  return from_vector(std::vector<float>(values), {static_cast<int64_t>(values.size())}, options);
}
Tensor tensor(std::initializer_list<std::initializer_list<float>> rows, TensorOptions options) {
  std::vector<float> values;
  size_t columns = rows.size() ? rows.begin()->size() : 0;
  for (const auto& row : rows) {
    MG_CHECK(row.size() == columns, "tensor: ragged rows (", row.size(), " values where ", columns, " expected)");
    values.insert(values.end(), row.begin(), row.end());
  }
  return from_vector(values, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(columns)}, options);
}
Tensor tensor(std::initializer_list<double> values, TensorOptions options) {
  return from_vector(std::vector<double>(values), {static_cast<int64_t>(values.size())}, options);
}
Tensor tensor(std::initializer_list<int64_t> values, TensorOptions options) {
  return from_vector(std::vector<int64_t>(values), {static_cast<int64_t>(values.size())}, options);
}
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }

}  // namespace mg
