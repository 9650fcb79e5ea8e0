// max and argmax over one dimension (and max over all elements).
//   x seen as (outer, size, inner) with size = x.size(dim); values, indices: (outer, inner)
//   forward:  indices[o, j] = the first k attaining max_k x[o, k, j] (NaN counts as the maximum,
//             as in PyTorch); values[o, j] = x[o, indices[o, j], j]
//   backward: d max / d x[o, k, j] = 1 if k == indices[o, j] else 0, so the gradient goes to the
//             first index attaining the maximum; the forward saves those indices.
#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/parallel.h"
#include "ops/reduce.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// True when v should replace the current best (NaN wins over numbers, and a first NaN stays).
template <class T>
bool beats(T v, T best) {
  return v > best || (v != v && best == best);
}

// values, indices: (outer, inner); x: (outer, size, inner), contiguous, size >= 1.
template <class T>
void max_forward_cpu(T* values, int64_t* indices, const T* x, int64_t outer, int64_t size, int64_t inner) {
  int64_t grain = std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(size * inner, 1));
  parallel_for(0, outer, grain, [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      const T* block = x + o * size * inner;
      T* value = values + o * inner;
      int64_t* index = indices + o * inner;
      for (int64_t j = 0; j < inner; ++j) {
        value[j] = block[j];
        index[j] = 0;
      }
      for (int64_t k = 1; k < size; ++k) {
        const T* row = block + k * inner;
        for (int64_t j = 0; j < inner; ++j) {
          if (!beats(row[j], value[j])) continue;
          value[j] = row[j];
          index[j] = k;
        }
      }
    }
  });
}

// dx: (outer, size, inner), zero-filled; dout, indices: (outer, inner).
template <class T>
void max_backward_cpu(T* dx, const T* dout, const int64_t* indices, int64_t outer, int64_t size, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) dx[(o * size + indices[o * inner + j]) * inner + j] = dout[o * inner + j];
}

struct MaxResult {
  Tensor values, indices;  // both in the keepdim shape, contiguous
  int64_t outer = 1, size = 1, inner = 1;
};

MaxResult max_forward(const char* op, const Tensor& x, int64_t dim) {
  MaxResult r;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < dim) r.outer *= x.size(d);
    else if (d == dim) r.size = x.size(d);
    else r.inner *= x.size(d);
  }
  MG_CHECK(r.size > 0, op, ": cannot reduce over dimension ", dim, " of size 0 (input ", x.shape(), ")");
  Shape keepdim_shape = x.shape();
  keepdim_shape[dim] = 1;
  r.values = empty(keepdim_shape, {.dtype = x.dtype(), .device = x.device()});
  r.indices = empty(keepdim_shape, {.dtype = DType::Int64, .device = x.device()});
  Tensor source = contiguous(x.detach());
  if (x.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::max_forward(r.values, r.indices, source, r.outer, r.size, r.inner));
    return r;
  }
  dispatch_all(x.dtype(), [&]<class T>() {
    max_forward_cpu<T>(r.values.data<T>(), r.indices.data<int64_t>(), source.data<T>(), r.outer, r.size, r.inner);
  });
  return r;
}

struct MaxBackward : Node {
  Tensor indices;  // saved: keepdim shape, int64, contiguous
  Shape input_shape;
  int64_t outer = 1, size = 1, inner = 1;

  std::string name() const override { return "MaxBackward"; }
  void release_saved() override { indices = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    Tensor dout = contiguous(grads[0]);
    Tensor dx = zeros(input_shape, {.dtype = dout.dtype(), .device = dout.device()});
    if (dx.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::max_backward(dx, dout, indices, outer, size, inner));
      return {dx};
    }
    dispatch_floating(dout.dtype(), "max", [&]<class T>() {
      max_backward_cpu<T>(dx.data<T>(), dout.data<T>(), indices.data<int64_t>(), outer, size, inner);
    });
    return {dx};
  }
};

Shape reduced_shape(const Tensor& x, int64_t dim, bool keepdim) {
  Shape shape = x.shape();
  if (keepdim) shape[dim] = 1;
  else shape.erase(shape.begin() + dim);
  return shape;
}

}  // namespace

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  if (x.dim() == 0) {  // a scalar is its own maximum over its one (implicit) dimension
    wrap_dim(dim, 0, "max");
    return max(reshape(x, {1}), 0, /*keepdim=*/false);
  }
  int64_t d = wrap_dim(dim, x.dim(), "max");
  MaxResult r = max_forward("max", x, d);
  Tensor out = r.values.view(reduced_shape(x, d, keepdim));
  if (needs_grad({x})) {
    auto node = std::make_shared<MaxBackward>();
    node->indices = r.indices;
    node->input_shape = x.shape();
    node->outer = r.outer;
    node->size = r.size;
    node->inner = r.inner;
    connect(node, {x}, {out});
  }
  return out;
}

Tensor max(const Tensor& x) {
  MG_CHECK(x.numel() > 0, "max: cannot take the maximum of an empty tensor (shape ", x.shape(), ")");
  return max(reshape(x, {-1}), 0, false);
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  if (x.dim() == 0) {
    wrap_dim(dim, 0, "argmax");
    return zeros({}, {.dtype = DType::Int64, .device = x.device()});
  }
  int64_t d = wrap_dim(dim, x.dim(), "argmax");
  return max_forward("argmax", x, d).indices.view(reduced_shape(x, d, keepdim));
}

}  // namespace mg
