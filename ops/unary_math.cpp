// Elementwise unary ops. Each op is one struct: its forward and its backward side by side, as
// scalar math; unary_op() below adds the loops, the checks and the autograd node.
//   forward<T>(x)          -> y
//   backward<T>(g, x, y)   -> dL/dx given g = dL/dy (reads x, y, or both; see kSaves)
// `kind` names the op for the CUDA kernels, which write the same formulas for the GPU
// (cuda/unary.cu).
#include <cmath>

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/fast_math.h"
#include "ops/cpu/unary.h"
#include "ops/op_kinds.h"
#include "ops/unary.h"
#include "tensor/factory.h"

namespace mg {

namespace {

enum Saves { kSavesInput = 1, kSavesOutput = 2 };

struct NegOp {
  static constexpr UnaryOp kind = UnaryOp::Neg;
  static constexpr const char* name = "neg";
  static constexpr int kSaves = 0;
  template <class T> T forward(T x) const { return -x; }
  template <class T> T backward(T g, T, T) const { return -g; }  // d/dx (-x) = -1
};

struct ExpOp {
  static constexpr UnaryOp kind = UnaryOp::Exp;
  static constexpr const char* name = "exp";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return cpu::fast_exp(x); }
  template <class T> T backward(T g, T, T y) const { return g * y; }  // d/dx exp(x) = exp(x) = y
};

struct LogOp {
  static constexpr UnaryOp kind = UnaryOp::Log;
  static constexpr const char* name = "log";
  static constexpr int kSaves = kSavesInput;
  template <class T> T forward(T x) const { return cpu::fast_log(x); }
  template <class T> T backward(T g, T x, T) const { return g / x; }  // d/dx log(x) = 1 / x
};

struct SqrtOp {
  static constexpr UnaryOp kind = UnaryOp::Sqrt;
  static constexpr const char* name = "sqrt";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return std::sqrt(x); }
  template <class T> T backward(T g, T, T y) const { return g / (T(2) * y); }  // d/dx sqrt(x) = 1 / (2 y)
};

struct RsqrtOp {
  static constexpr UnaryOp kind = UnaryOp::Rsqrt;
  static constexpr const char* name = "rsqrt";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return T(1) / std::sqrt(x); }
  // d/dx x^(-1/2) = -1/2 x^(-3/2) = -1/2 y^3
  template <class T> T backward(T g, T, T y) const { return T(-0.5) * g * y * y * y; }
};

struct PowOp {
  static constexpr UnaryOp kind = UnaryOp::Pow;
  static constexpr const char* name = "pow";
  static constexpr int kSaves = kSavesInput;
  double exponent = 1.0;
  template <class T> T forward(T x) const { return exponent == 2.0 ? x * x : std::pow(x, T(exponent)); }
  // d/dx x^p = p x^(p-1); exactly 0 for p = 0 (PyTorch's rule: no 0 * inf = nan at x = 0)
  template <class T> T backward(T g, T x, T) const {
    if (exponent == 0.0) return T(0);
    if (exponent == 2.0) return g * T(2) * x;
    return g * T(exponent) * std::pow(x, T(exponent - 1.0));
  }
};

struct AbsOp {
  static constexpr UnaryOp kind = UnaryOp::Abs;
  static constexpr const char* name = "abs";
  static constexpr int kSaves = kSavesInput;
  template <class T> T forward(T x) const { return std::fabs(x); }
  // d/dx |x| = sign(x), taken as 0 at x = 0 (PyTorch's subgradient)
  template <class T> T backward(T g, T x, T) const { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};

struct SigmoidOp {
  static constexpr UnaryOp kind = UnaryOp::Sigmoid;
  static constexpr const char* name = "sigmoid";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return cpu::fast_sigmoid(x); }
  template <class T> T backward(T g, T, T y) const { return g * y * (T(1) - y); }  // s' = s (1 - s)
};

struct TanhOp {
  static constexpr UnaryOp kind = UnaryOp::Tanh;
  static constexpr const char* name = "tanh";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return cpu::fast_tanh(x); }
  template <class T> T backward(T g, T, T y) const { return g * (T(1) - y * y); }  // tanh' = 1 - tanh^2
};

struct ReluOp {
  static constexpr UnaryOp kind = UnaryOp::Relu;
  static constexpr const char* name = "relu";
  static constexpr int kSaves = kSavesOutput;
  template <class T> T forward(T x) const { return x < T(0) ? T(0) : x; }  // NaN stays NaN
  template <class T> T backward(T g, T, T y) const { return y > T(0) ? g : T(0); }  // 1 where x > 0, else 0
};

struct GeluOp {
  static constexpr UnaryOp kind = UnaryOp::Gelu;
  static constexpr const char* name = "gelu";
  static constexpr int kSaves = kSavesInput;
  // gelu(x) = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal CDF
  template <class T> T forward(T x) const { return x * T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))); }
  // d/dx x Phi(x) = Phi(x) + x phi(x), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
  template <class T> T backward(T g, T x, T) const {
    T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
    T pdf = cpu::fast_exp(T(-0.5) * x * x) * T(0.3989422804014327);  // 1 / sqrt(2 pi)
    return g * (cdf + x * pdf);
  }
};

// GPT-2's GELU: the tanh approximation of x Phi(x) (Hendrycks & Gimpel 2016, eq. in section 2),
// as torch.nn.functional.gelu(x, approximate="tanh"). No CUDA kernel yet (no `kind`).
//   gelu_tanh(x) = x/2 (1 + tanh(u)),  u = k (x + c x^3),  k = sqrt(2 / pi),  c = 0.044715
struct GeluTanhOp {
  static constexpr UnaryOp kind = UnaryOp::GeluTanh;
  static constexpr const char* name = "gelu_tanh";
  static constexpr int kSaves = kSavesInput;
  static constexpr double k = 0.79788456080286535588, c = 0.044715;
  template <class T> T forward(T x) const {
    return T(0.5) * x * (T(1) + cpu::fast_tanh(T(k) * (x + T(c) * x * x * x)));
  }
  // d/dx = (1 + t) / 2 + x/2 (1 - t^2) du/dx,  t = tanh(u),  du/dx = k (1 + 3 c x^2)
  template <class T> T backward(T g, T x, T) const {
    T x2 = x * x;
    T t = cpu::fast_tanh(T(k) * (x + T(c) * x2 * x));
    T du = T(k) * (T(1) + T(3 * c) * x2);
    return g * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du);
  }
};

struct SiluOp {
  static constexpr UnaryOp kind = UnaryOp::Silu;
  static constexpr const char* name = "silu";
  static constexpr int kSaves = kSavesInput;
  template <class T> T forward(T x) const { return cpu::fast_silu(x); }
  // d/dx x s(x) = s + x s (1 - s) = s (1 + x (1 - s)),  s = sigmoid(x)
  template <class T> T backward(T g, T x, T) const {
    T s = cpu::fast_sigmoid(x);
    return g * s * (T(1) + x * (T(1) - s));
  }
};

struct SoftplusOp {
  static constexpr UnaryOp kind = UnaryOp::Softplus;
  static constexpr const char* name = "softplus";
  static constexpr int kSaves = kSavesInput;
  double beta = 1.0, threshold = 20.0;
  // log(1 + exp(beta x)) / beta, or x where beta x > threshold (PyTorch's linear regime)
  template <class T> T forward(T x) const { return cpu::fast_softplus(x, T(beta), T(threshold)); }
  // d/dx = exp(beta x) / (1 + exp(beta x)) = sigmoid(beta x); 1 in the linear regime
  template <class T> T backward(T g, T x, T) const {
    T bx = T(beta) * x;
    return bx > T(threshold) ? g : g * cpu::fast_sigmoid(bx);
  }
};

// Ops with a CUDA kernel name their kind (ops/op_kinds.h); the others say so on a GPU tensor.
template <class Op>
constexpr bool kHasCudaKernel = requires { Op::kind; };

template <class Op>
[[noreturn]] void no_cuda_kernel(const Tensor& x) {
  throw Error(str(Op::name, ": no CUDA kernel yet (input ", x.shape(), " on ", x.device(), ")"));
}

// Pow's exponent and Softplus's beta and threshold, for the CUDA kernels.
template <class Op>
UnaryParams params_of(const Op& op) {
  if constexpr (requires { op.exponent; }) return {op.exponent, 0};
  else if constexpr (requires { op.beta; }) return {op.beta, op.threshold};
  else return {};
}

template <class Op>
struct UnaryBackward : Node {
  Op op;
  Tensor x, out;  // saved according to Op::kSaves
  std::string name() const override { return str(Op::name, "Backward"); }
  void release_saved() override { x = out = Tensor(); }
  TensorList backward(const TensorList& grads) override {
    const Tensor& g = grads[0];
    Tensor dx = empty_like(g);
    if (g.device().is_cuda()) {
      if constexpr (kHasCudaKernel<Op>) MG_CUDA_DISPATCH(cuda::unary_backward(Op::kind, params_of(op), dx, g, x, out));
      else no_cuda_kernel<Op>(g);
    } else {
      dispatch_floating(g.dtype(), Op::name, [&]<class T>() { cpu::unary_backward_cpu<Op, T>(dx, g, x, out, op); });
    }
    return {dx};
  }
};

template <class Op>
Tensor unary_op(const Tensor& x, Op op = {}) {
  check_floating(Op::name, x);
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  if (x.device().is_cuda()) {
    if constexpr (kHasCudaKernel<Op>) MG_CUDA_DISPATCH(cuda::unary_forward(Op::kind, params_of(op), out, x));
    else no_cuda_kernel<Op>(x);
  } else {
    dispatch_floating(x.dtype(), Op::name, [&]<class T>() { cpu::unary_forward_cpu<Op, T>(out, x, op); });
  }
  if (needs_grad({x})) {
    auto node = std::make_shared<UnaryBackward<Op>>();
    node->op = op;
    if (Op::kSaves & kSavesInput) node->x = x.detach();
    if (Op::kSaves & kSavesOutput) node->out = out.detach();
    connect(node, {x}, {out});
  }
  return out;
}

}  // namespace

Tensor neg(const Tensor& x) { return unary_op<NegOp>(x); }
Tensor exp(const Tensor& x) { return unary_op<ExpOp>(x); }
Tensor log(const Tensor& x) { return unary_op<LogOp>(x); }
Tensor sqrt(const Tensor& x) { return unary_op<SqrtOp>(x); }
Tensor rsqrt(const Tensor& x) { return unary_op<RsqrtOp>(x); }
Tensor pow(const Tensor& x, double exponent) { return unary_op(x, PowOp{.exponent = exponent}); }
Tensor abs(const Tensor& x) { return unary_op<AbsOp>(x); }
Tensor sigmoid(const Tensor& x) { return unary_op<SigmoidOp>(x); }
Tensor tanh(const Tensor& x) { return unary_op<TanhOp>(x); }
Tensor relu(const Tensor& x) { return unary_op<ReluOp>(x); }
Tensor gelu(const Tensor& x) { return unary_op<GeluOp>(x); }
Tensor gelu_tanh(const Tensor& x) { return unary_op<GeluTanhOp>(x); }
Tensor silu(const Tensor& x) { return unary_op<SiluOp>(x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  MG_CHECK(beta != 0.0, "softplus: beta must be nonzero, got 0 (input ", x.shape(), ")");
  return unary_op(x, SoftplusOp{.beta = beta, .threshold = threshold});
}

}  // namespace mg
