#pragma once
// The elementwise kernel every elementwise op on the GPU launches (cuda/elementwise.cu,
// cuda/unary.cu, cuda/discretize.cu).
//
// One kernel template serves them all. Each thread handles kElementwiseUnroll elements kElementwiseThreads apart (so a
// warp's accesses stay coalesced), loads all of its inputs first, then computes and stores: the
// loads of several elements are in flight at once, which a memory-bound kernel needs to
// approach the bandwidth. What is loaded and stored is a small functor per op:
//   struct F { struct Loaded {...}; Loaded load(const int64_t* off); void store(const int64_t* off, Loaded); }
// with off[k] the element offset of operand k (operand 0 is the output).
#include "cuda/check.h"
#include "cuda/launch.cuh"
#include "cuda/strided.cuh"

namespace mg::cuda {

inline constexpr int kElementwiseThreads = 256;
inline constexpr int kElementwiseUnroll = 4;

template <int N, class Index, class F>
__global__ void __launch_bounds__(kElementwiseThreads) elementwise_kernel(Index numel, StridedOffsets<N, Index> offsets, F f) {
  Index base = static_cast<Index>(blockIdx.x) * (kElementwiseThreads * kElementwiseUnroll) + threadIdx.x;
  typename F::Loaded values[kElementwiseUnroll];
  int64_t off[kElementwiseUnroll][N];
#pragma unroll
  for (int u = 0; u < kElementwiseUnroll; ++u) {
    Index i = base + u * kElementwiseThreads;
    if (i < numel) {
      offsets.get(i, off[u]);
      values[u] = f.load(off[u]);
    }
  }
#pragma unroll
  for (int u = 0; u < kElementwiseUnroll; ++u)
    if (base + u * kElementwiseThreads < numel) f.store(off[u], values[u]);
}

// Runs f over `shape`, operand k seen through operands[k]'s strides broadcast to that shape.
template <int N, class F>
void launch_elementwise(const char* op, const Shape& shape, const std::array<const Tensor*, N>& operands, F f) {
  int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  DeviceGuard guard(operands[0]->device().index);
  Layout<N> layout = broadcast_layout<N>(shape, operands);
  int64_t blocks = (numel + kElementwiseThreads * kElementwiseUnroll - 1) / (kElementwiseThreads * kElementwiseUnroll);
  if (fits_32bit_index(numel)) {
    elementwise_kernel<N, uint32_t><<<blocks, kElementwiseThreads, 0, current_stream()>>>(static_cast<uint32_t>(numel),
                                                          make_offsets<N, uint32_t>(layout, op), f);
  } else {
    elementwise_kernel<N, int64_t><<<blocks, kElementwiseThreads, 0, current_stream()>>>(numel, make_offsets<N, int64_t>(layout, op), f);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
