#pragma once
// Tensor: a cheap value handle (shared pointer) to a TensorImpl that holds
//   - a Storage (bytes on a device), shared by all views of it,
//   - the view: sizes, strides and offset in elements, and the dtype,
//   - autograd metadata: requires_grad, grad, grad_fn and which output of grad_fn this is.
// Copying a Tensor copies the handle, not the data.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/shape.h"
#include "tensor/storage.h"

namespace mg {

class Node;  // autograd/node.h
class Tensor;
using TensorList = std::vector<Tensor>;

struct TensorOptions {
  DType dtype = DType::Float32;
  Device device = Device::cpu();
  bool requires_grad = false;

  TensorOptions with_dtype(DType d) const { auto o = *this; o.dtype = d; return o; }
  TensorOptions with_device(Device d) const { auto o = *this; o.device = d; return o; }
  TensorOptions with_requires_grad(bool r) const { auto o = *this; o.requires_grad = r; return o; }
};

struct TensorImpl {
  TensorImpl(std::shared_ptr<Storage> storage, Shape sizes, Shape strides, int64_t offset, DType dtype);
  ~TensorImpl();
  TensorImpl(const TensorImpl&) = delete;
  TensorImpl& operator=(const TensorImpl&) = delete;

  std::shared_ptr<Storage> storage;
  Shape sizes;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  // Autograd. grad_fn is set on results of differentiable ops; leaves have none.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
  uint32_t output_nr = 0;               // which output of grad_fn this tensor is
  std::weak_ptr<Node> grad_accumulator;  // a leaf's AccumulateGrad node, while a graph holds it
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (used for "no gradient")
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // --- view metadata
  const Shape& shape() const { return checked().sizes; }
  const Shape& strides() const { return checked().strides; }
  int64_t offset() const { return checked().offset; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t dim) const;  // negative dims count from the end
  int64_t numel() const { return shape_numel(shape()); }
  DType dtype() const { return checked().dtype; }
  Device device() const { return checked().storage->device(); }
  bool is_contiguous() const;
  int64_t nbytes() const { return numel() * dtype_size(dtype()); }

  // Pointer to the first element of the view. T must match the dtype (checked).
  template <class T> T* data() const {
    MG_CHECK(dtype_of<T>() == dtype(), "data<", dtype_name(dtype_of<T>()), ">: tensor has dtype ", dtype());
    return static_cast<T*>(checked().storage->data()) + offset();
  }
  void* raw_data() const {
    return static_cast<char*>(checked().storage->data()) + offset() * dtype_size(dtype());
  }

  // --- reading values back (copies to the CPU if needed)
  template <class T> T item() const;               // one-element tensor, converted to T
  template <class T> std::vector<T> to_vector() const;  // all elements in row-major order

  // --- autograd
  bool requires_grad() const { return checked().requires_grad; }
  Tensor& requires_grad_(bool requires_grad = true);  // leaves only
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  uint32_t output_nr() const { return checked().output_nr; }
  Tensor grad() const { return Tensor(checked().grad); }
  void set_grad(const Tensor& grad);
  void zero_grad() { checked().grad.reset(); }
  // Gradients of this tensor w.r.t. every leaf that requires grad, accumulated into their .grad().
  // A scalar may omit grad_output (it is 1). Frees the graph unless retain_graph.
  void backward(const Tensor& grad_output = Tensor(), bool retain_graph = false) const;
  // A tensor sharing this one's data but cut from the graph (no grad_fn, requires_grad false).
  Tensor detach() const;

  // --- copies, conversions and views (defined in ops/, differentiable)
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor contiguous() const;  // this tensor itself when already contiguous
  Tensor clone() const;       // always a fresh contiguous copy
  Tensor reshape(const Shape& shape) const;  // a view when the strides allow, else a copy; one dim may be -1
  Tensor view(const Shape& shape) const;     // like reshape but never copies (throws instead)
  Tensor permute(const Shape& dims) const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // True when both handles point to the same TensorImpl.
  bool is_same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  TensorImpl& checked() const {
    MG_CHECK(impl_ != nullptr, "tensor: this operation needs a defined tensor, got an undefined one");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

// Prints values (elided past 6 per dim), then shape, dtype and device.
std::ostream& operator<<(std::ostream& out, const Tensor& tensor);

// A fresh tensor header over existing storage (no autograd history).
Tensor make_view(const Tensor& base, Shape sizes, Shape strides, int64_t offset);

// Live object counters (for the leak tests: the graph must be freed after backward).
int64_t live_tensor_impl_count();

}  // namespace mg
