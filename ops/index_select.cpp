// index_select: the slices of x along `dim` picked by a 1-D int64 index (repeats allowed).
//   x seen as (outer, rows, inner) with rows = x.size(dim); out: (outer, n, inner)
//   forward:  out[o, i, :] = x[o, index[i], :]
//   backward: dx[o, r, :] = sum of dout[o, i, :] over the i with index[i] == r   (scatter-add)
#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/index_select.h"
#include "ops/indexing.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// (outer, rows, inner) of a shape around dimension `dim`.
struct RowView {
  int64_t outer = 1, rows = 1, inner = 1;
};
RowView row_view(const Shape& shape, int64_t dim) {
  RowView v;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim) v.outer *= shape[d];
    else if (d == dim) v.rows = shape[d];
    else v.inner *= shape[d];
  }
  return v;
}

struct IndexSelectBackward : Node {
  Tensor index;  // saved: (n,) contiguous int64
  Shape input_shape;
  int64_t dim = 0;

  std::string name() const override { return "IndexSelectBackward"; }
  void release_saved() override { index = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    Tensor dout = contiguous(grads[0]);  // (outer, n, inner)
    Tensor dx = zeros(input_shape, {.dtype = dout.dtype(), .device = dout.device()});
    RowView v = row_view(input_shape, dim);
    if (dx.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::index_select_backward(dx, dout, index, v.outer, v.rows, v.inner));
      return {dx};
    }
    dispatch_floating(dout.dtype(), "index_select", [&]<class T>() {
      index_select_backward_cpu<T>(dx.data<T>(), dout.data<T>(), index.data<int64_t>(), v.outer, v.rows,
                                   index.numel(), v.inner);
    });
    return {dx};
  }
};

}  // namespace

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  MG_CHECK(x.dim() > 0, "index_select: expected a tensor with at least one dimension, got shape ", x.shape());
  int64_t d = wrap_dim(dim, x.dim(), "index_select");
  MG_CHECK(index.dtype() == DType::Int64 && index.dim() == 1, "index_select: index must be a 1-D int64 tensor, got ",
           index.shape(), " ", index.dtype());
  check_same_device("index_select", {x, index});
  Tensor ids = contiguous(index.detach());
  Tensor source = contiguous(x.detach());
  Shape out_shape = x.shape();
  out_shape[d] = ids.numel();
  Tensor out = empty(out_shape, {.dtype = x.dtype(), .device = x.device()});
  RowView v = row_view(x.shape(), d);
  if (x.device().is_cuda()) {  // the kernel checks the index: an error comes at the next wait for the GPU
    MG_CUDA_DISPATCH(cuda::index_select_forward(out, source, ids, v.outer, v.rows, v.inner, /*embedding=*/false));
  } else {
    const int64_t* id = ids.data<int64_t>();
    int64_t bad = first_index_out_of_range(id, ids.numel(), x.size(d));
    MG_CHECK(bad < 0, "index_select: index ", bad < 0 ? 0 : id[bad], " is out of range for dimension ", d,
             " of size ", x.size(d), " (input ", x.shape(), ")");
    index_select_forward_cpu(out.raw_data(), source.raw_data(), id, v.outer, v.rows, ids.numel(), v.inner,
                             dtype_size(x.dtype()));
  }

  if (needs_grad({x})) {
    auto node = std::make_shared<IndexSelectBackward>();
    node->index = ids.detach();
    node->input_shape = x.shape();
    node->dim = d;
    connect(node, {x}, {out});
  }
  return out;
}

}  // namespace mg
