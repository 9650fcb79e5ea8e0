// matmul and linear: forward, backward and device dispatch.
//
// matmul follows PyTorch: a 1-D a is promoted to (1, k) and a 1-D b to (k, 1) with unsqueeze, whose
// own backward undoes the promotion; then (..., n, k) @ (..., k, m) with broadcast batch dims.
// Backward of C = A @ B (per batch item):
//   dA = dC @ B^T,  dB = A^T @ dC      (B^T, A^T are transposed views: no copies)
// each then summed over the batch dims its operand was broadcast along.
// linear(x, W, b) = x @ W^T + b as one GEMM over all rows of x; its backward is three reductions:
//   dx = dy @ W,  dW = dy^T @ x,  db = sum of dy over rows.
#include "ops/matmul.h"

#include <algorithm>

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/matmul.h"
#include "ops/reduce.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

Shape batch_shape(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

Shape concat(Shape a, const Shape& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

cpu::MatrixLayout layout_of(const Tensor& t) {
  int64_t d = t.dim();
  return cpu::matrix_layout(t.size(d - 2), t.size(d - 1), t.strides()[d - 2], t.strides()[d - 1]);
}

// t itself when its matrices can be read in place (contiguous or transposed), else a copy.
Tensor mappable(const Tensor& t) { return layout_of(t).mappable ? t : contiguous(t); }

// The matrix in t's last two dims, at t's first element.
template <class T>
cpu::StridedMatrix<T> matrix_of(const Tensor& t) {
  int64_t d = t.dim();
  return {t.data<T>(), t.size(d - 2), t.size(d - 1), t.strides()[d - 2], t.strides()[d - 1]};
}

// Element offsets of t's matrices over the broadcast batch shape, in row-major batch order
// (0 along dims where t is broadcast).
std::vector<int64_t> batch_offsets(const Tensor& t, const Shape& batch) {
  int64_t ndim = static_cast<int64_t>(batch.size()), lead = ndim - (t.dim() - 2);
  std::vector<int64_t> offsets(shape_numel(batch), 0);
  Shape index(ndim, 0);
  for (int64_t& offset : offsets) {
    for (int64_t d = lead; d < ndim; ++d)
      if (t.size(d - lead) != 1) offset += index[d] * t.strides()[d - lead];
    for (int64_t d = ndim - 1; d >= 0; --d) {
      if (++index[d] < batch[d]) break;
      index[d] = 0;
    }
  }
  return offsets;
}

// The single stride s with offsets[i] = i * s, or -1 when there is none.
int64_t uniform_stride(const std::vector<int64_t>& offsets) {
  int64_t s = offsets.size() > 1 ? offsets[1] : 0;
  for (size_t i = 0; i < offsets.size(); ++i)
    if (offsets[i] != static_cast<int64_t>(i) * s) return -1;
  return s;
}

// cuBLAS takes one batch stride per operand: a batch broadcast over several dims whose offsets
// are not i * stride is materialized first (rare: e.g. (2, 1, n, k) @ (1, 3, k, m)).
void gemm_cuda(const Tensor& out, Tensor a, Tensor b, const Shape& batch) {
  int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  if (uniform_stride(batch_offsets(a, batch)) < 0) a = contiguous(expand(a, concat(batch, {m, k})));
  if (uniform_stride(batch_offsets(b, batch)) < 0) b = contiguous(expand(b, concat(batch, {k, n})));
  [[maybe_unused]] cpu::MatrixLayout la = layout_of(a), lb = layout_of(b);
  [[maybe_unused]] int64_t stride_a = uniform_stride(batch_offsets(a, batch));
  [[maybe_unused]] int64_t stride_b = uniform_stride(batch_offsets(b, batch));
  MG_CUDA_DISPATCH(cuda::gemm(out.dtype(), la.transposed, lb.transposed, m, n, k, a.raw_data(), la.leading_stride,
                              stride_a, b.raw_data(), lb.leading_stride, stride_b, out.raw_data(), m * n,
                              shape_numel(batch), out.device().index));
}

// out (batch..., m, n), contiguous = a (..., m, k) @ b (..., k, n); a and b mappable. No autograd.
void gemm_into(const Tensor& out, const Tensor& a, const Tensor& b, const Shape& batch) {
  if (out.numel() == 0) return;
  if (a.size(-1) == 0) {  // an empty sum
    NoGradGuard no_grad;
    Tensor zero = zeros({}, {.dtype = out.dtype(), .device = out.device()});
    Tensor dst = out;
    copy_inplace(dst, zero);
    return;
  }
  if (out.device().is_cuda()) return gemm_cuda(out, a, b, batch);
  std::vector<int64_t> a_offsets = batch_offsets(a, batch), b_offsets = batch_offsets(b, batch);
  dispatch_floating(out.dtype(), "matmul", [&]<class T>() {
    cpu::batched_gemm_cpu<T>(out.data<T>(), matrix_of<T>(a), a_offsets.data(), matrix_of<T>(b), b_offsets.data(),
                             static_cast<int64_t>(a_offsets.size()));
  });
}

// The forward of matmul for a (..., n, k), b (..., k, m), both at least 2-D and checked. No autograd.
Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  NoGradGuard no_grad;
  int64_t n = a.size(-2), k = a.size(-1), m = b.size(-1);
  TensorOptions options{.dtype = a.dtype(), .device = a.device()};
  if (a.dim() > 2 && b.dim() == 2) {
    // (..., n, k) @ (k, m): one GEMM over all rows of a (a view when a's rows are evenly spaced).
    int64_t rows = shape_numel(batch_shape(a)) * n;
    Tensor out = empty({rows, m}, options);
    gemm_into(out, mappable(reshape(a, {rows, k})), mappable(b), {});
    return view(out, concat(batch_shape(a), {n, m}));
  }
  Shape batch = broadcast_shapes(batch_shape(a), batch_shape(b), "matmul");
  Tensor out = empty(concat(batch, {n, m}), options);
  gemm_into(out, mappable(a), mappable(b), batch);
  return out;
}

// Gradients of C = A @ B (A, B at least 2-D).
struct MatmulBackward : Node {
  Tensor a, b;  // saved: each operand is the other's gradient factor

  std::string name() const override { return "MatmulBackward"; }
  void release_saved() override { a = b = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    const Tensor& dc = grads[0];  // (batch..., n, m)
    Tensor da, db;
    if (next_edges[0].node) da = sum_to_shape(matmul_forward(dc, b.transpose(-1, -2)), a.shape());  // dC @ B^T
    if (next_edges[1].node) {
      if (a.dim() > 2 && b.dim() == 2) {
        // B was shared by every batch item: dB = sum_i A_i^T dC_i, one GEMM over all rows.
        int64_t rows = shape_numel(batch_shape(a)) * a.size(-2);
        db = matmul_forward(reshape(a, {rows, a.size(-1)}).transpose(0, 1), reshape(dc, {rows, b.size(-1)}));
      } else {
        db = sum_to_shape(matmul_forward(a.transpose(-1, -2), dc), b.shape());  // A^T @ dC
      }
    }
    return {da, db};
  }
};

// matmul of operands that are at least 2-D, with autograd.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  Tensor out = matmul_forward(a.detach(), b.detach());
  if (needs_grad({a, b})) {
    auto node = std::make_shared<MatmulBackward>();
    node->a = a.detach();
    node->b = b.detach();
    connect(node, {a, b}, {out});
  }
  return out;
}

void check_matmul(const Tensor& a, const Tensor& b) {
  check_floating_inputs("matmul", {a, b});
  MG_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both arguments need at least 1 dimension, got shapes ", a.shape(),
           " and ", b.shape());
  int64_t inner_b = b.dim() == 1 ? b.size(0) : b.size(-2);
  MG_CHECK(a.size(-1) == inner_b, "matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied");
  Shape batch_a = a.dim() > 2 ? batch_shape(a) : Shape{}, batch_b = b.dim() > 2 ? batch_shape(b) : Shape{};
  for (size_t i = 1; i <= std::min(batch_a.size(), batch_b.size()); ++i) {
    int64_t da = batch_a[batch_a.size() - i], db = batch_b[batch_b.size() - i];
    MG_CHECK(da == db || da == 1 || db == 1, "matmul: shapes ", a.shape(), " and ", b.shape(),
             " cannot be multiplied (batch dimensions ", batch_a, " and ", batch_b, " do not broadcast)");
  }
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_matmul(a, b);
  Tensor out = matmul_nd(a.dim() == 1 ? unsqueeze(a, 0) : a, b.dim() == 1 ? unsqueeze(b, -1) : b);
  if (a.dim() == 1) out = squeeze(out, -2);  // (..., 1, m) -> (..., m)
  if (b.dim() == 1) out = squeeze(out, -1);  // (..., n, 1) -> (..., n)
  return out;
}

namespace {

// Gradients of y = x @ W^T + b over x's rows.
struct LinearBackward : Node {
  Tensor x;       // saved: (rows, in), a view or copy of the input; needed for dW
  Tensor weight;  // saved: (out, in); needed for dx
  Shape x_shape;
  bool has_bias = false;

  std::string name() const override { return "LinearBackward"; }
  void release_saved() override { x = weight = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    Tensor dy = mappable(reshape(grads[0], {x.size(0), weight.size(0)}));  // (rows, out)
    TensorOptions options{.dtype = dy.dtype(), .device = dy.device()};
    Tensor dx, dweight, dbias;
    if (next_edges[0].node) {  // dx = dy @ W: (rows, in)
      dx = empty({x.size(0), x.size(1)}, options);
      gemm_into(dx, dy, weight, {});
      dx = view(dx, x_shape);
    }
    if (next_edges[1].node) {  // dW = dy^T @ x: (out, in), one GEMM over all rows
      dweight = empty(weight.shape(), options);
      gemm_into(dweight, dy.transpose(0, 1), x, {});
    }
    if (has_bias && next_edges[2].node) {  // db = sum over rows of dy: (out)
      if (dy.device().is_cuda()) {
        dbias = sum(dy, {0});
      } else {
        Tensor dy_rows = contiguous(dy);
        dbias = empty({weight.size(0)}, options);
        dispatch_floating(dy.dtype(), "linear", [&]<class T>() {
          cpu::column_sums_cpu<T>(dbias.data<T>(), dy_rows.data<T>(), dy_rows.size(0), dy_rows.size(1));
        });
      }
    }
    return {dx, dweight, dbias};
  }
};

void check_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_floating_inputs("linear", {x, weight, bias});
  MG_CHECK(weight.dim() == 2, "linear: expected weight (out_features, in_features), got shape ", weight.shape());
  MG_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ", x.shape(), " and weight ", weight.shape(),
           " do not match (expected input (..., ", weight.size(1), "))");
  MG_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), "linear: expected bias (",
           weight.size(0), ") for weight ", weight.shape(), ", got shape ", bias.shape());
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_linear(x, weight, bias);
  int64_t in = weight.size(1), out_features = weight.size(0);
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  int64_t rows = shape_numel(lead);
  Tensor x2, y2;
  {
    NoGradGuard no_grad;
    x2 = mappable(reshape(x.detach(), {rows, in}));  // (rows, in)
    Tensor w = weight.detach(), w_t = mappable(w).transpose(0, 1);  // (in, out), a view
    y2 = empty({rows, out_features}, {.dtype = x.dtype(), .device = x.device()});  // (rows, out)
    if (y2.device().is_cpu() && y2.numel() > 0) {
      // Fused: rows start as the bias, and the GEMM accumulates x @ W^T onto them.
      dispatch_floating(x.dtype(), "linear", [&]<class T>() {
        if (bias.defined()) cpu::broadcast_rows_cpu<T>(y2.data<T>(), contiguous(bias.detach()).data<T>(), rows, out_features);
        cpu::gemm_cpu<T>(y2.data<T>(), matrix_of<T>(x2), matrix_of<T>(w_t), bias.defined());
      });
    } else {
      gemm_into(y2, x2, w_t, {});
      if (bias.defined()) y2 = add(y2, bias.detach());
    }
  }
  Tensor y = view(y2, concat(lead, {out_features}));
  if (needs_grad({x, weight, bias})) {
    auto node = std::make_shared<LinearBackward>();
    node->x = x2.detach();
    node->weight = mappable(weight.detach());
    node->x_shape = x.shape();
    node->has_bias = bias.defined();
    connect(node, {x, weight, bias}, {y});
  }
  return y;
}

}  // namespace mg
