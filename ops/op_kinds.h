#pragma once
// The identities of the elementwise ops, shared by the backends. The ops own them (ops/binary.cpp,
// ops/unary_math.cpp); the CPU loops and the CUDA kernels (cuda/kernels.h) take them from here and
// each writes the math of every kind for its device.
namespace mg {

enum class BinaryOp : int { Add, Sub, Mul, Div };

// Parameters travel beside the kind: Pow's exponent, Softplus's beta and threshold.
enum class UnaryOp : int { Neg, Exp, Log, Sqrt, Rsqrt, Pow, Abs, Sigmoid, Tanh, Relu, Gelu, GeluTanh, Silu, Softplus };

struct UnaryParams {
  double p0 = 0, p1 = 0;  // Pow: exponent; Softplus: beta, threshold
};

}  // namespace mg
