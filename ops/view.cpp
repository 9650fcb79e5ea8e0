// Views: new sizes/strides/offset over the same storage. Each backward maps the gradient back
// to the input's shape (a reshape, an inverse permutation, a sum over expanded dims, or a
// scatter into zeros for a slice).
#include "ops/view.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "autograd/function.h"
#include "ops/binary.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// Strides that let `sizes` view a tensor with (old_sizes, old_strides) without a copy, if any
// exist (the algorithm of PyTorch's computeStride: split or merge runs of contiguous dims).
std::optional<Shape> view_strides(const Shape& old_sizes, const Shape& old_strides, const Shape& sizes) {
  if (shape_numel(sizes) == 0 || old_sizes.empty()) return contiguous_strides(sizes);
  Shape strides(sizes.size(), 1);
  int64_t view_d = static_cast<int64_t>(sizes.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t tensor_d = static_cast<int64_t>(old_sizes.size()) - 1; tensor_d >= 0; --tensor_d) {
    tensor_numel *= old_sizes[tensor_d];
    if (tensor_d == 0 ||
        (old_sizes[tensor_d - 1] != 1 && old_strides[tensor_d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || sizes[view_d] == 1)) {
        strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= sizes[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (tensor_d > 0) {
        chunk_base_stride = old_strides[tensor_d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

// Resolves one -1 in a requested shape and checks the element count.
Shape infer_shape(const char* op, const Shape& input, const Shape& requested) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      MG_CHECK(infer_at < 0, op, ": only one dimension can be -1, got ", requested);
      infer_at = static_cast<int64_t>(d);
    } else {
      MG_CHECK(shape[d] >= 0, op, ": invalid size in shape ", requested);
      known *= shape[d];
    }
  }
  int64_t numel = shape_numel(input);
  if (infer_at >= 0) {
    MG_CHECK(known != 0 && numel % known == 0, op, ": shape ", requested, " is invalid for input of shape ", input);
    shape[infer_at] = numel / known;
  }
  MG_CHECK(shape_numel(shape) == numel, op, ": shape ", requested, " is invalid for input of shape ", input);
  return shape;
}

// Backward of every view whose gradient is a reshape back to the input shape.
struct ReshapeBackward : Node {
  Shape input_shape;
  std::string name() const override { return "ReshapeBackward"; }
  TensorList backward(const TensorList& grads) override { return {reshape(grads[0], input_shape)}; }
};

struct PermuteBackward : Node {
  Shape inverse;  // inverse[dims[i]] = i
  std::string name() const override { return "PermuteBackward"; }
  TensorList backward(const TensorList& grads) override { return {permute(grads[0], inverse)}; }
};

struct SliceBackward : Node {
  Shape input_shape;
  int64_t dim, start, end, step;
  std::string name() const override { return "SliceBackward"; }
  TensorList backward(const TensorList& grads) override {
    // d/dx of a slice: the gradient lands in the sliced positions, zero elsewhere.
    Tensor dx = zeros(input_shape, {.dtype = grads[0].dtype(), .device = grads[0].device()});
    Tensor window = slice(dx, dim, start, end, step);
    copy_inplace(window, grads[0]);
    return {dx};
  }
};

struct ExpandBackward : Node {
  Shape input_shape;
  std::string name() const override { return "ExpandBackward"; }
  TensorList backward(const TensorList& grads) override { return {sum_to_shape(grads[0], input_shape)}; }
};

Tensor with_reshape_history(const Tensor& x, Tensor out) {
  if (needs_grad({x})) {
    auto node = std::make_shared<ReshapeBackward>();
    node->input_shape = x.shape();
    connect(node, {x}, {out});
  }
  return out;
}

}  // namespace

Tensor view(const Tensor& x, const Shape& shape) {
  Shape sizes = infer_shape("view", x.shape(), shape);
  std::optional<Shape> strides = view_strides(x.shape(), x.strides(), sizes);
  MG_CHECK(strides.has_value(), "view: cannot view a tensor of shape ", x.shape(), " with strides ", x.strides(),
           " as ", shape, " without a copy; use reshape");
  return with_reshape_history(x, make_view(x, sizes, *strides, x.offset()));
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape sizes = infer_shape("reshape", x.shape(), shape);
  if (view_strides(x.shape(), x.strides(), sizes)) return view(x, sizes);
  return view(contiguous(x), sizes);
}

Tensor permute(const Tensor& x, const Shape& dims) {
  MG_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute: ", dims.size(), " dims given for a tensor of shape ",
           x.shape());
  Shape sizes(dims.size()), strides(dims.size()), inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    MG_CHECK(inverse[d] == -1, "permute: dimension ", d, " repeats in ", dims);
    inverse[d] = static_cast<int64_t>(i);
    sizes[i] = x.size(d);
    strides[i] = x.strides()[d];
  }
  Tensor out = make_view(x, sizes, strides, x.offset());
  if (needs_grad({x})) {
    auto node = std::make_shared<PermuteBackward>();
    node->inverse = inverse;
    connect(node, {x}, {out});
  }
  return out;
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  int64_t d0 = wrap_dim(dim0, x.dim(), "transpose"), d1 = wrap_dim(dim1, x.dim(), "transpose");
  Shape dims(x.dim());
  std::iota(dims.begin(), dims.end(), 0);
  if (x.dim() > 0) std::swap(dims[d0], dims[d1]);  // a 0-d tensor accepts dim 0 / -1 and stays as it is
  return permute(x, dims);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  MG_CHECK(x.dim() > 0, "slice: expected a tensor with at least one dimension, got shape ", x.shape());
  dim = wrap_dim(dim, x.dim(), "slice");
  int64_t size = x.size(dim);
  MG_CHECK(step > 0, "slice: step must be positive, got ", step);
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  Shape sizes = x.shape(), strides = x.strides();
  sizes[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  Tensor out = make_view(x, sizes, strides, x.offset() + start * x.strides()[dim]);
  if (needs_grad({x})) {
    auto node = std::make_shared<SliceBackward>();
    node->input_shape = x.shape();
    node->dim = dim;
    node->start = start;
    node->end = end;
    node->step = step;
    connect(node, {x}, {out});
  }
  return out;
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  MG_CHECK(x.dim() > 0, "narrow: expected a tensor with at least one dimension, got shape ", x.shape());
  int64_t d = wrap_dim(dim, x.dim(), "narrow");
  MG_CHECK(start >= 0 && length >= 0 && start + length <= x.size(d), "narrow: [", start, ", ", start + length,
           ") is out of range for dimension ", d, " of shape ", x.shape());
  return slice(x, d, start, start + length);
}

Tensor expand(const Tensor& x, const Shape& shape) {
  int64_t lead = static_cast<int64_t>(shape.size()) - x.dim();
  MG_CHECK(lead >= 0, "expand: cannot expand shape ", x.shape(), " to the smaller ", shape);
  Shape sizes(shape.size()), strides(shape.size(), 0);
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    int64_t target = shape[d];
    if (d < lead) {
      MG_CHECK(target >= 0, "expand: invalid size -1 for new leading dimension in ", shape);
      sizes[d] = target;
      continue;
    }
    int64_t own = x.size(d - lead);
    if (target == -1) target = own;
    MG_CHECK(own == target || own == 1, "expand: shape ", x.shape(), " cannot be expanded to ", shape);
    sizes[d] = target;
    strides[d] = own == target ? x.strides()[d - lead] : 0;
  }
  Tensor out = make_view(x, sizes, strides, x.offset());
  if (needs_grad({x})) {
    auto node = std::make_shared<ExpandBackward>();
    node->input_shape = x.shape();
    connect(node, {x}, {out});
  }
  return out;
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim(), "squeeze");
  if (x.dim() == 0 || x.size(d) != 1) return x;
  Shape sizes = x.shape(), strides = x.strides();
  sizes.erase(sizes.begin() + d);
  strides.erase(strides.begin() + d);
  return with_reshape_history(x, make_view(x, sizes, strides, x.offset()));
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  int64_t d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape sizes = x.shape(), strides = x.strides();
  int64_t stride = d < x.dim() ? x.strides()[d] * x.size(d) : 1;
  sizes.insert(sizes.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  return with_reshape_history(x, make_view(x, sizes, strides, x.offset()));
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  int64_t start = wrap_dim(start_dim, x.dim(), "flatten"), end = wrap_dim(end_dim, x.dim(), "flatten");
  MG_CHECK(start <= end, "flatten: start_dim ", start_dim, " comes after end_dim ", end_dim);
  Shape sizes(x.shape().begin(), x.shape().begin() + start);
  int64_t merged = 1;
  for (int64_t d = start; d <= end; ++d) merged *= x.size(d);
  sizes.push_back(merged);
  sizes.insert(sizes.end(), x.shape().begin() + end + 1, x.shape().end());
  return reshape(x, sizes);
}

// ---- Tensor's member forms
Tensor Tensor::reshape(const Shape& shape) const { return mg::reshape(*this, shape); }
Tensor Tensor::view(const Shape& shape) const { return mg::view(*this, shape); }
Tensor Tensor::permute(const Shape& dims) const { return mg::permute(*this, dims); }
Tensor Tensor::transpose(int64_t dim0, int64_t dim1) const { return mg::transpose(*this, dim0, dim1); }
Tensor Tensor::narrow(int64_t dim, int64_t start, int64_t length) const { return mg::narrow(*this, dim, start, length); }
Tensor Tensor::expand(const Shape& shape) const { return mg::expand(*this, shape); }
Tensor Tensor::squeeze(int64_t dim) const { return mg::squeeze(*this, dim); }
Tensor Tensor::unsqueeze(int64_t dim) const { return mg::unsqueeze(*this, dim); }
Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const { return mg::flatten(*this, start_dim, end_dim); }

}  // namespace mg
