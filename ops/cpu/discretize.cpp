// CPU kernels of the SSM discretization; the math is in ops/cpu/discretize.h and ops/discretize.h.
#include "ops/cpu/discretize.h"

#include <array>

#include "ops/cpu/loops.h"

namespace mg::cpu {

namespace {

// Calls f(p) for every element of `shape`, with p[k] pointing at operand k's element (operands
// broadcast to `shape`). Not the fastest loop, but this op is not on a hot path.
template <class T, size_t N, class F>
void for_each_element(const Shape& shape, const std::array<const Tensor*, N>& operands, F f) {
  ElementwiseLoop<N>(shape, operands).run([&](const auto& ptrs, const auto& strides, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
      std::array<T*, N> p;
      for (size_t k = 0; k < N; ++k) p[k] = reinterpret_cast<T*>(ptrs[k]) + i * strides[k];
      f(p);
    }
  });
}

}  // namespace

template <class T>
void discretize_a_forward_cpu(const Tensor& A_bar, const Tensor& delta, const Tensor& A) {
  for_each_element<T, 3>(A_bar.shape(), {&A_bar, &delta, &A}, [](const auto& p) { *p[0] = std::exp(*p[1] * *p[2]); });
}

template <class T>
void discretize_b_forward_cpu(const Tensor& B_bar, const Tensor& delta, const Tensor& A, const Tensor& B, bool exact) {
  if (exact) {
    for_each_element<T, 4>(B_bar.shape(), {&B_bar, &delta, &A, &B}, [](const auto& p) {
      T dt = *p[1];
      *p[0] = dt * exprel(dt * *p[2]) * *p[3];  // (exp(dt A) - 1) / A * B without dividing by A
    });
  } else {
    for_each_element<T, 3>(B_bar.shape(), {&B_bar, &delta, &B}, [](const auto& p) { *p[0] = *p[1] * *p[2]; });
  }
}

template <class T>
void discretize_a_backward_cpu(const Tensor& ddelta, const Tensor& dA, const Tensor& dA_bar, const Tensor& delta,
                               const Tensor& A) {
  // A_bar = exp(delta A):  d/d delta = A exp(delta A),  d/dA = delta exp(delta A)
  for_each_element<T, 5>(dA_bar.shape(), {&ddelta, &dA, &dA_bar, &delta, &A}, [](const auto& p) {
    T dt = *p[3], a = *p[4];
    T g = *p[2] * std::exp(dt * a);
    *p[0] = g * a;
    *p[1] = g * dt;
  });
}

template <class T>
void discretize_b_backward_cpu(const Tensor& ddelta, const Tensor& dA, const Tensor& dB, const Tensor& dB_bar,
                               const Tensor& delta, const Tensor& A, const Tensor& B, bool exact) {
  if (!exact) {
    // B_bar = delta B:  d/d delta = B,  d/dB = delta
    for_each_element<T, 5>(dB_bar.shape(), {&ddelta, &dB, &dB_bar, &delta, &B}, [](const auto& p) {
      T g = *p[2];
      *p[0] = g * *p[4];
      *p[1] = g * *p[3];
    });
    return;
  }
  // B_bar = delta exprel(x) B with x = delta A.
  //   d/d delta: B (exprel(x) + x exprel'(x)) = B exp(x), since delta exprel(delta A) = (exp(delta A) - 1) / A
  //   d/dA:      B delta^2 exprel'(x)   (-> B delta^2 / 2 at A = 0)
  //   d/dB:      delta exprel(x)
  for_each_element<T, 7>(dB_bar.shape(), {&ddelta, &dA, &dB, &dB_bar, &delta, &A, &B}, [](const auto& p) {
    T g = *p[3], dt = *p[4], b = *p[6];
    T x = dt * *p[5], ex = std::exp(x);
    *p[0] = g * b * ex;
    *p[1] = g * b * dt * dt * exprel_derivative(x, ex);
    *p[2] = g * dt * exprel(x, ex);
  });
}

#define MG_INSTANTIATE_DISCRETIZE(T)                                                                           \
  template void discretize_a_forward_cpu<T>(const Tensor&, const Tensor&, const Tensor&);                     \
  template void discretize_b_forward_cpu<T>(const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool); \
  template void discretize_a_backward_cpu<T>(const Tensor&, const Tensor&, const Tensor&, const Tensor&,      \
                                             const Tensor&);                                                  \
  template void discretize_b_backward_cpu<T>(const Tensor&, const Tensor&, const Tensor&, const Tensor&,      \
                                             const Tensor&, const Tensor&, const Tensor&, bool);
MG_INSTANTIATE_DISCRETIZE(float)
MG_INSTANTIATE_DISCRETIZE(double)
#undef MG_INSTANTIATE_DISCRETIZE

}  // namespace mg::cpu
