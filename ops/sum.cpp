// sum and mean over dimensions.
//   forward: move the reduced dims last, then each output element sums one contiguous row
//            (float32 accumulates in double; long rows are cut in fixed chunks whose partial
//            sums are added in order, so the result does not depend on the thread count)
//   backward: d/dx_i sum(x) = 1, so dx = the gradient broadcast back over the reduced dims.
#include <numeric>

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/parallel.h"
#include "ops/reduce.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct ReducedDims {
  std::vector<bool> reduced;  // per input dim
  Shape keepdim_shape;        // input shape with reduced dims set to 1
  Shape out_shape;            // keepdim_shape, or without the reduced dims
  int64_t count = 1;          // elements summed into each output
};

ReducedDims reduced_dims(const char* op, const Tensor& x, const Shape& dims, bool keepdim) {
  ReducedDims r;
  r.reduced.assign(x.dim(), dims.empty());
  for (int64_t d : dims) {
    int64_t w = wrap_dim(d, x.dim(), op);
    if (x.dim() == 0) continue;  // a 0-d tensor accepts dim 0 or -1 (like PyTorch) and has nothing to reduce
    MG_CHECK(!r.reduced[w], op, ": dimension ", d, " repeats in ", dims);
    r.reduced[w] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    r.keepdim_shape.push_back(r.reduced[d] ? 1 : x.size(d));
    if (r.reduced[d]) r.count *= x.size(d);
    if (!r.reduced[d] || keepdim) r.out_shape.push_back(r.reduced[d] ? 1 : x.size(d));
  }
  return r;
}

template <class T>
void sum_rows_cpu(T* out, const T* x, int64_t rows, int64_t row_len) {
  using Acc = double;
  constexpr int64_t kChunk = 1 << 14;
  if (rows == 1 && row_len > kChunk) {
    int64_t chunks = (row_len + kChunk - 1) / kChunk;
    std::vector<Acc> partial(chunks, 0);
    parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        Acc acc = 0;
        for (int64_t i = c * kChunk; i < std::min(row_len, (c + 1) * kChunk); ++i) acc += x[i];
        partial[c] = acc;
      }
    });
    out[0] = static_cast<T>(std::accumulate(partial.begin(), partial.end(), Acc(0)));
    return;
  }
  parallel_for(0, rows, std::max<int64_t>(1, kChunk / std::max<int64_t>(row_len, 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      Acc acc = 0;
      const T* row = x + r * row_len;
      for (int64_t i = 0; i < row_len; ++i) acc += row[i];
      out[r] = static_cast<T>(acc);
    }
  });
}

// The forward: out (contiguous, keepdim shape) = sum of x over the reduced dims.
Tensor sum_forward(const Tensor& x, const ReducedDims& r) {
  Tensor out = empty(r.keepdim_shape, {.dtype = x.dtype(), .device = x.device()});
  if (x.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::sum_to(out, x));
    return out;
  }
  Shape order;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!r.reduced[d]) order.push_back(d);
  for (int64_t d = 0; d < x.dim(); ++d)
    if (r.reduced[d]) order.push_back(d);
  NoGradGuard no_grad;
  Tensor rows = contiguous(permute(x, order));
  dispatch_floating(x.dtype(), "sum", [&]<class T>() {
    sum_rows_cpu<T>(out.data<T>(), rows.data<T>(), out.numel(), r.count);
  });
  return out;
}

struct SumBackward : Node {
  Shape input_shape, keepdim_shape;
  double scale = 1.0;  // 1 for sum, 1/count for mean
  std::string name() const override { return scale == 1.0 ? "SumBackward" : "MeanBackward"; }
  TensorList backward(const TensorList& grads) override {
    Tensor g = reshape(grads[0], keepdim_shape);
    if (scale != 1.0) g = mul(g, scale);
    return {expand(g, input_shape)};
  }
};

Tensor reduce_sum(const char* op, const Tensor& x, const Shape& dims, bool keepdim, bool average) {
  check_floating(op, x);
  ReducedDims r = reduced_dims(op, x, dims, keepdim);
  Tensor out = sum_forward(x, r);
  double scale = 1.0;
  if (average) {
    MG_CHECK(r.count > 0, op, ": cannot average over zero elements (shape ", x.shape(), ", dims ", dims, ")");
    scale = 1.0 / static_cast<double>(r.count);
    NoGradGuard no_grad;
    mul_inplace(out, scale);
  }
  out = out.detach().view(r.out_shape);
  if (needs_grad({x})) {
    auto node = std::make_shared<SumBackward>();
    node->input_shape = x.shape();
    node->keepdim_shape = r.keepdim_shape;
    node->scale = scale;
    connect(node, {x}, {out});
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) { return reduce_sum("sum", x, dims, keepdim, false); }
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) { return reduce_sum("mean", x, dims, keepdim, true); }

}  // namespace mg
