#pragma once
// Elementwise binary ops with NumPy broadcasting, and their scalar forms.
#include "tensor/tensor.h"

namespace mg {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);

Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rsub(double a, const Tensor& b);  // a - b
Tensor rdiv(double a, const Tensor& b);  // a / b

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(double a, const Tensor& b) { return rsub(a, b); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(double a, const Tensor& b) { return rdiv(a, b); }

// Sums `t` down to `shape` over broadcast dimensions: the backward of broadcasting.
Tensor sum_to_shape(const Tensor& t, const Shape& shape);

// In place, never recorded by autograd (for optimizers and gradient clipping):
// dst += alpha * src, dst *= value. dst must not require grad while grad mode is on.
void add_inplace(Tensor& dst, const Tensor& src, double alpha = 1.0);
void mul_inplace(Tensor& dst, double value);
// dst = src (shapes must match; src may be broadcast and strided; dtypes may differ).
void copy_inplace(Tensor& dst, const Tensor& src);

}  // namespace mg
