#pragma once
// Element types. Dispatch from a runtime DType to a template is one small switch
// (dispatch_floating / dispatch_all), not a framework.
#include <cstdint>
#include <ostream>

#include "tensor/error.h"

namespace mg {

enum class DType : uint8_t { Float32, Float64, Int64 };

constexpr int64_t dtype_size(DType dtype) { return dtype == DType::Float32 ? 4 : 8; }
constexpr bool is_floating(DType dtype) { return dtype != DType::Int64; }
const char* dtype_name(DType dtype);  // "float32", "float64", "int64"
inline std::ostream& operator<<(std::ostream& out, DType dtype) { return out << dtype_name(dtype); }

template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }

// Calls fn.template operator()<T>() with T = float or double; other dtypes throw naming `op`.
//   dispatch_floating(x.dtype(), "exp", [&]<class T>() { exp_forward_cpu<T>(...); });
template <class Fn>
decltype(auto) dispatch_floating(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    default: throw Error(str(op, ": expected a floating-point tensor (float32 or float64), got ", dtype));
  }
}

// Same, for every dtype (float, double, int64_t).
template <class Fn>
decltype(auto) dispatch_all(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::Int64: return fn.template operator()<int64_t>();
  }
  throw InternalError("dispatch_all: unknown dtype");
}

}  // namespace mg
