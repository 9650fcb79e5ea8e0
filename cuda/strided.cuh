#pragma once
// Strided indexing on the GPU, shared by the elementwise and reduction kernels.
//
// A kernel walks a linear index i over an iteration shape and needs, for each operand, the
// element offset of i in that operand's own strides. The host first simplifies the shape
// (coalesce: drop size-1 dims, merge dims that are contiguous in every operand, so a contiguous
// tensor is 1-D and a row-broadcast is 2-D), then passes sizes and strides to the kernel by
// value in a small struct. Splitting i into per-dim indices divides by each size; with 32-bit
// indices a divider with precomputed magic numbers makes each division a multiply-high, an add
// and a shift (PyTorch's IntDivider).
#include <array>
#include <cstdint>
#include <type_traits>

#include "tensor/tensor.h"

namespace mg::cuda {

constexpr int kMaxDims = 8;  // dims left after coalescing; more throws a clear error

// n / divisor for 0 <= n < 2^31 and 1 <= divisor <= 2^31 (Granlund & Montgomery 1994).
struct FastDivider {
  uint32_t divisor = 1, magic = 1, shift = 0;
  FastDivider() = default;
  explicit FastDivider(uint32_t d) : divisor(d) {
    while (shift < 31 && (1u << shift) < d) ++shift;  // shift = ceil(log2(d))
    magic = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << shift) - d)) / d + 1);
  }
  __host__ __device__ uint32_t div(uint32_t n) const {
#ifdef __CUDA_ARCH__
    uint32_t t = __umulhi(n, magic);
#else
    uint32_t t = static_cast<uint32_t>((static_cast<uint64_t>(n) * magic) >> 32);
#endif
    return (t + n) >> shift;
  }
};

// The 64-bit fallback for tensors of 2^31 elements or more: a plain division.
struct PlainDivider {
  int64_t divisor = 1;
  PlainDivider() = default;
  explicit PlainDivider(int64_t d) : divisor(d) {}
  __host__ __device__ int64_t div(int64_t n) const { return n / divisor; }
};

template <class Index>
using Divider = std::conditional_t<std::is_same_v<Index, uint32_t>, FastDivider, PlainDivider>;

// A coalesced iteration space for N operands, innermost dim first (host side).
template <int N>
struct Layout {
  Shape sizes;                  // innermost first; at least one entry
  std::array<Shape, N> strides;  // per operand, in elements, same order
};

// shape and strides outermost first (as Tensor stores them). A stride of 0 broadcasts.
template <int N>
Layout<N> coalesce(const Shape& shape, const std::array<Shape, N>& strides) {
  Layout<N> layout;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] == 1) continue;
    bool merge = !layout.sizes.empty();
    for (int k = 0; k < N && merge; ++k) merge = strides[k][d] == layout.strides[k].back() * layout.sizes.back();
    if (merge) {
      layout.sizes.back() *= shape[d];
      continue;
    }
    layout.sizes.push_back(shape[d]);
    for (int k = 0; k < N; ++k) layout.strides[k].push_back(strides[k][d]);
  }
  if (layout.sizes.empty()) {  // a single element
    layout.sizes.push_back(1);
    for (int k = 0; k < N; ++k) layout.strides[k].push_back(0);
  }
  return layout;
}

// Strides of `t` broadcast to `shape` (right-aligned; 0 where t has size 1 or no such dim).
inline Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape out(shape.size(), 0);
  int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d) out[lead + d] = t.size(d) == 1 ? 0 : t.strides()[d];
  return out;
}

// Each operand broadcast to `shape`, coalesced.
template <int N>
Layout<N> broadcast_layout(const Shape& shape, const std::array<const Tensor*, N>& operands) {
  std::array<Shape, N> strides;
  for (int k = 0; k < N; ++k) strides[k] = broadcast_strides(*operands[k], shape);
  return coalesce<N>(shape, strides);
}

// What a kernel receives: sizes and strides by value (a few hundred bytes of kernel parameters).
template <int N, class Index>
struct StridedOffsets {
  int ndim = 1;
  Divider<Index> sizes[kMaxDims];
  int64_t strides[N][kMaxDims];

  // off[k] = element offset of linear index i in operand k.
  __device__ void get(Index i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
    for (int d = 0; d < kMaxDims; ++d) {
      if (d == ndim - 1) {  // the outermost dim needs no division
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(i) * strides[k][d];
        break;
      }
      Index q = sizes[d].div(i);
      Index r = i - q * static_cast<Index>(sizes[d].divisor);
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(r) * strides[k][d];
      i = q;
    }
  }
};

template <int N, class Index>
StridedOffsets<N, Index> make_offsets(const Layout<N>& layout, const char* op) {
  int ndim = static_cast<int>(layout.sizes.size());
  MG_CHECK(ndim <= kMaxDims, op, ": on cuda, tensors with more than ", kMaxDims,
           " dimensions that cannot be merged are not supported yet (sizes ", layout.sizes, ")");
  StridedOffsets<N, Index> offsets;
  offsets.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    offsets.sizes[d] = Divider<Index>(static_cast<Index>(layout.sizes[d]));
    for (int k = 0; k < N; ++k) offsets.strides[k][d] = layout.strides[k][d];
  }
  return offsets;
}

// 32-bit indexing (fast division) is exact below 2^31 elements.
inline bool fits_32bit_index(int64_t numel) { return numel < (int64_t{1} << 31); }

}  // namespace mg::cuda
