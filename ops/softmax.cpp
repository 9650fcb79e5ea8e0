// softmax, log_softmax and cross_entropy (kernels in ops/cpu/softmax.cpp and cuda/softmax.cu).
//   softmax(x)_c     = exp(x_c - max) / sum_k exp(x_k - max)         (max-shifted: never overflows)
//   log_softmax(x)_c = (x_c - max) - log sum_k exp(x_k - max)
//   cross_entropy    = mean over non-ignored rows n of -log_softmax(logits_n)[t_n]
// The forwards save their output (softmax) or row logsumexp (cross_entropy) for the backward.
#include <vector>

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/softmax.h"
#include "ops/softmax.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// x viewed as (outer, C, inner) around the softmax dimension.
struct SoftmaxDims {
  int64_t outer = 1, C = 1, inner = 1;
};

SoftmaxDims softmax_dims(const char* op, const Tensor& x, int64_t dim) {
  SoftmaxDims d;
  if (x.dim() == 0) {
    wrap_dim(dim, 1, op);  // a 0-d tensor is one row of one element (PyTorch accepts dim 0 or -1)
    return d;
  }
  int64_t w = wrap_dim(dim, x.dim(), op);
  d.C = x.size(w);
  for (int64_t k = 0; k < w; ++k) d.outer *= x.size(k);
  for (int64_t k = w + 1; k < x.dim(); ++k) d.inner *= x.size(k);
  return d;
}

struct SoftmaxBackward : Node {
  Tensor out;  // y: the forward's output, contiguous
  SoftmaxDims dims;
  bool log = false;
  std::string name() const override { return log ? "LogSoftmaxBackward" : "SoftmaxBackward"; }
  void release_saved() override { out = Tensor(); }
  // softmax:      dx = y * (g - sum_c g * y)     (J = diag(y) - y y^T)
  // log_softmax:  dx = g - exp(y) * sum_c g      (J = I - 1 softmax^T)
  TensorList backward(const TensorList& grads) override {
    Tensor g = grads[0].contiguous();
    Tensor dx = empty_like(out);
    if (dx.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::softmax_backward(dx, g, out, dims.outer, dims.C, dims.inner, log));
      return {dx};
    }
    dispatch_floating(out.dtype(), "softmax", [&]<class T>() {
      cpu::softmax_backward_cpu<T>(dx.data<T>(), g.data<T>(), out.data<T>(), dims.outer, dims.C, dims.inner, log);
    });
    return {dx};
  }
};

Tensor softmax_op(const char* op, const Tensor& x, int64_t dim, bool log) {
  check_floating(op, x);
  SoftmaxDims dims = softmax_dims(op, x, dim);
  Tensor xc = x.detach().contiguous();
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  if (x.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::softmax_forward(out, xc, dims.outer, dims.C, dims.inner, log));
  } else {
    dispatch_floating(x.dtype(), op, [&]<class T>() {
      cpu::softmax_forward_cpu<T>(out.data<T>(), xc.data<T>(), dims.outer, dims.C, dims.inner, log);
    });
  }
  if (needs_grad({x})) {
    auto node = std::make_shared<SoftmaxBackward>();
    node->out = out.detach();
    node->dims = dims;
    node->log = log;
    connect(node, {x}, {out});
  }
  return out;
}

struct CrossEntropyBackward : Node {
  Tensor logits, targets;  // (N, C) contiguous, (N) int64
  Tensor lse;              // (N) float64: logsumexp of each row
  Tensor count;            // 0-d float64: the rows that count (not ignored), on the logits' device
  int64_t ignore_index = -100;
  std::string name() const override { return "CrossEntropyBackward"; }
  void release_saved() override { logits = targets = lse = count = Tensor(); }
  // d loss / d logits[n, c] = (softmax(logits[n])_c - [c == t_n]) / count for non-ignored rows, else 0
  TensorList backward(const TensorList& grads) override {
    Tensor dlogits = empty_like(logits);
    if (logits.device().is_cuda()) {  // the scale is read on the GPU: no wait for the host
      MG_CUDA_DISPATCH(cuda::cross_entropy_backward(dlogits, logits, targets, lse, count, grads[0].contiguous(),
                                                    ignore_index));
      return {dlogits};
    }
    const double rows = count.item<double>();
    double scale = rows > 0 ? grads[0].item<double>() / rows : 0.0;
    int64_t C = logits.size(-1), N = logits.numel() / std::max<int64_t>(C, 1);
    dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
      cpu::cross_entropy_backward_cpu<T>(dlogits.data<T>(), logits.data<T>(), targets.data<int64_t>(),
                                         lse.data<double>(), scale, N, C, ignore_index);
    });
    return {dlogits};
  }
};

// Every target is ignore_index or lies in [0, C); checked before any parallel loop runs.
void check_targets(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  int64_t C = logits.size(-1);
  const int64_t* t = targets.data<int64_t>();
  for (int64_t n = 0; n < targets.numel(); ++n)
    MG_CHECK(t[n] == ignore_index || (t[n] >= 0 && t[n] < C), "cross_entropy: target ", t[n], " at position ", n,
             " is outside [0, ", C, ") (logits ", logits.shape(), ", targets ", targets.shape(), ", ignore_index ",
             ignore_index, ")");
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op("softmax", x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op("log_softmax", x, dim, true); }

// logits: (..., C), targets: (...) int64. If every target is ignored the mean is 0 / 0 = nan, as in
// PyTorch; the gradient is then all zeros.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy";
  check_floating(op, logits);
  MG_CHECK(logits.dim() >= 1, op, ": expected logits with a class dimension, got shape ", logits.shape());
  MG_CHECK(targets.dtype() == DType::Int64, op, ": expected int64 targets, got ", targets.dtype(), " (logits ",
           logits.shape(), ", targets ", targets.shape(), ")");
  Shape expected(logits.shape().begin(), logits.shape().end() - 1);
  MG_CHECK(targets.shape() == expected, op, ": targets of shape ", targets.shape(), " do not match logits ",
           logits.shape(), " (expected targets of shape ", expected, ")");
  check_same_device(op, {logits, targets});
  Tensor x = logits.detach().contiguous(), t = targets.detach().contiguous();
  int64_t C = x.size(-1), N = t.numel();
  Tensor out, lse, count;
  if (x.device().is_cuda()) {  // targets are checked by the kernel (reported at the next wait for the GPU)
    const TensorOptions f64{.dtype = DType::Float64, .device = x.device()};
    out = empty({}, {.dtype = x.dtype(), .device = x.device()});
    lse = empty({N}, f64);
    count = empty({}, f64);
    MG_CUDA_DISPATCH(cuda::cross_entropy_forward(out, lse, count, x, t, ignore_index));
  } else {
    check_targets(x, t, ignore_index);
    std::vector<double> loss(N);
    lse = empty({N}, {.dtype = DType::Float64});
    dispatch_floating(x.dtype(), op, [&]<class T>() {
      cpu::cross_entropy_forward_cpu<T>(loss.data(), lse.data<double>(), x.data<T>(), t.data<int64_t>(), N, C,
                                        ignore_index);
    });
    double total = 0;  // in row order: the same for every thread count
    int64_t rows = 0;
    const int64_t* tv = t.data<int64_t>();
    for (int64_t n = 0; n < N; ++n) {
      total += loss[n];
      rows += tv[n] != ignore_index;
    }
    out = full(Shape{}, total / static_cast<double>(rows), {.dtype = x.dtype()});  // 0 / 0 = nan
    count = full(Shape{}, static_cast<double>(rows), {.dtype = DType::Float64});
  }
  if (needs_grad({logits})) {
    auto node = std::make_shared<CrossEntropyBackward>();
    node->logits = x;
    node->targets = t;
    node->lse = lse;
    node->count = count;
    node->ignore_index = ignore_index;
    connect(node, {logits}, {out});
  }
  return out;
}

}  // namespace mg
