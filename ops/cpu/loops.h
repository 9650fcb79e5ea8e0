#pragma once
// Strided, broadcasting iteration for elementwise CPU kernels.
//
// ElementwiseLoop<N> walks N operands over one iteration shape: operand 0 is usually the output,
// the others are inputs broadcast to that shape (stride 0 along broadcast dimensions).
// Dimensions that are contiguous across all operands are merged, then the innermost one becomes a
// tight loop: run() calls row(ptrs, strides, n) with one pointer per operand at the start of a
// run of n elements and each operand's element stride along it. The typed helpers below pick a
// unit-stride or scalar-broadcast inner loop that the compiler vectorizes.
#include <array>

#include "ops/cpu/parallel.h"
#include "tensor/tensor.h"

namespace mg::cpu {

// Strides of `t` broadcast to `shape` (right-aligned; 0 where t has size 1 or no dimension).
Shape broadcast_strides(const Tensor& t, const Shape& shape);

template <size_t N>
class ElementwiseLoop {
 public:
  ElementwiseLoop(const Shape& shape, const std::array<const Tensor*, N>& operands) {
    for (size_t k = 0; k < N; ++k) {
      base_[k] = static_cast<char*>(operands[k]->raw_data());
      element_size_[k] = dtype_size(operands[k]->dtype());
    }
    std::array<Shape, N> all_strides;
    for (size_t k = 0; k < N; ++k) all_strides[k] = broadcast_strides(*operands[k], shape);
    // Coalesce from the innermost dimension outwards, dropping size-1 dims.
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (shape[d] == 1) continue;
      std::array<int64_t, N> s;
      for (size_t k = 0; k < N; ++k) s[k] = all_strides[k][d];
      bool merge = !sizes_.empty();
      for (size_t k = 0; k < N && merge; ++k) merge = s[k] == strides_[k].back() * sizes_.back();
      if (merge) {
        sizes_.back() *= shape[d];  // the run keeps its inner stride
        continue;
      }
      sizes_.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) strides_[k].push_back(s[k]);
    }
    // sizes_/strides_ are innermost-first; an empty list means a single element.
    if (sizes_.empty()) {
      sizes_.push_back(1);
      for (size_t k = 0; k < N; ++k) strides_[k].push_back(0);
    }
  }

  template <class Row>
  void run(Row&& row) const {
    for (int64_t size : sizes_)
      if (size == 0) return;  // an empty tensor: nothing to visit (and no division by a zero row length)
    int64_t inner = sizes_[0];
    int64_t outer = 1;
    for (size_t d = 1; d < sizes_.size(); ++d) outer *= sizes_[d];
    constexpr int64_t kGrainElements = 1 << 15;
    // Split long rows too, so one big contiguous tensor still uses every thread.
    int64_t pieces = std::max<int64_t>(1, inner / kGrainElements);
    int64_t piece_len = (inner + pieces - 1) / pieces;
    int64_t rows_per_chunk = std::max<int64_t>(1, kGrainElements / inner);
    parallel_for(0, outer * pieces, pieces > 1 ? 1 : rows_per_chunk, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        int64_t r = item / pieces, piece = item % pieces;
        std::array<char*, N> ptrs;
        std::array<int64_t, N> inner_strides;
        for (size_t k = 0; k < N; ++k) {
          int64_t offset = 0, rest = r;
          for (size_t d = 1; d < sizes_.size(); ++d) {
            offset += (rest % sizes_[d]) * strides_[k][d];
            rest /= sizes_[d];
          }
          offset += piece * piece_len * strides_[k][0];
          ptrs[k] = base_[k] + offset * element_size_[k];
          inner_strides[k] = strides_[k][0];
        }
        row(ptrs, inner_strides, std::min(piece_len, inner - piece * piece_len));
      }
    });
  }

 private:
  std::array<char*, N> base_;
  std::array<int64_t, N> element_size_;
  Shape sizes_;
  std::array<Shape, N> strides_;
};

// out = f(x) elementwise; out has x's shape (or x broadcasts to it). Types: Out and In.
template <class Out, class In, class F>
void unary_kernel(const Tensor& out, const Tensor& x, F f) {
  ElementwiseLoop<2>(out.shape(), {&out, &x}).run([&](auto ptrs, auto strides, int64_t n) {
    Out* o = reinterpret_cast<Out*>(ptrs[0]);
    const In* a = reinterpret_cast<const In*>(ptrs[1]);
    if (strides[0] == 1 && strides[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(a[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * strides[0]] = f(a[i * strides[1]]);
    }
  });
}

// out = f(a, b) elementwise with broadcasting (all of type T).
template <class T, class F>
void binary_kernel(const Tensor& out, const Tensor& a, const Tensor& b, F f) {
  ElementwiseLoop<3>(out.shape(), {&out, &a, &b}).run([&](auto ptrs, auto strides, int64_t n) {
    T* o = reinterpret_cast<T*>(ptrs[0]);
    const T* x = reinterpret_cast<const T*>(ptrs[1]);
    const T* y = reinterpret_cast<const T*>(ptrs[2]);
    if (strides[0] == 1 && strides[1] == 1 && strides[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    } else if (strides[0] == 1 && strides[1] == 1 && strides[2] == 0) {
      const T yv = *y;
      for (int64_t i = 0; i < n; ++i) o[i] = f(x[i], yv);
    } else if (strides[0] == 1 && strides[1] == 0 && strides[2] == 1) {
      const T xv = *x;
      for (int64_t i = 0; i < n; ++i) o[i] = f(xv, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * strides[0]] = f(x[i * strides[1]], y[i * strides[2]]);
    }
  });
}

}  // namespace mg::cpu
