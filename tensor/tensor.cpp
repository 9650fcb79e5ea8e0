#include "tensor/tensor.h"

#include <atomic>
#include <cstring>

namespace mg {

namespace {
std::atomic<int64_t> g_live_tensor_impls{0};

// Visits the storage offsets of a view's elements in row-major order.
template <class Fn>
void for_each_offset(const Shape& sizes, const Shape& strides, int64_t offset, Fn&& fn) {
  int64_t n = shape_numel(sizes);
  if (n == 0) return;
  int64_t ndim = static_cast<int64_t>(sizes.size());
  Shape index(ndim, 0);
  for (int64_t i = 0; i < n; ++i) {
    fn(offset);
    for (int64_t d = ndim - 1; d >= 0; --d) {
      offset += strides[d];
      if (++index[d] < sizes[d]) break;
      offset -= strides[d] * sizes[d];
      index[d] = 0;
    }
  }
}
}  // namespace

TensorImpl::TensorImpl(std::shared_ptr<Storage> storage_, Shape sizes_, Shape strides_, int64_t offset_, DType dtype_)
    : storage(std::move(storage_)), sizes(std::move(sizes_)), strides(std::move(strides_)), offset(offset_), dtype(dtype_) {
  MG_ASSERT(sizes.size() == strides.size());
  ++g_live_tensor_impls;
}

TensorImpl::~TensorImpl() { --g_live_tensor_impls; }

int64_t live_tensor_impl_count() { return g_live_tensor_impls.load(); }

int64_t Tensor::size(int64_t d) const {
  MG_CHECK(dim() > 0, "size: a 0-d tensor has no dimension ", d);  // wrap_dim alone would accept 0
  return shape()[wrap_dim(d, dim(), "size")];
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] == 1) continue;  // the stride of a size-1 dim never matters
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset) {
  return Tensor(std::make_shared<TensorImpl>(base.impl()->storage, std::move(sizes), std::move(strides), offset,
                                             base.dtype()));
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out;
  out.reserve(numel());
  auto convert = [&]<class S>() {
    const S* base = static_cast<const S*>(checked().storage->data());
    if (device().is_cpu()) {
      for_each_offset(shape(), strides(), offset(), [&](int64_t i) { out.push_back(static_cast<T>(base[i])); });
      return;
    }
    Tensor dense = contiguous();
    std::vector<S> host(numel());
    copy_bytes(host.data(), Device::cpu(), dense.raw_data(), dense.device(), host.size() * sizeof(S));
    for (S v : host) out.push_back(static_cast<T>(v));
  };
  dispatch_all(dtype(), convert);
  return out;
}

template <class T>
T Tensor::item() const {
  MG_CHECK(numel() == 1, "item: expected a tensor with one element, got shape ", shape());
  return to_vector<T>()[0];
}

template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int64_t Tensor::item<int64_t>() const;

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "unknown";
}

}  // namespace mg
