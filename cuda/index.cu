// index_select and embedding on the GPU: the gather, and its scatter-add backward without atomics.
//
// The backward dx[o, index[i], :] += dout[o, i, :] has many i per row (a common token appears
// thousands of times in a batch). Adding them with atomicAdd would make the sum's order, and so
// its rounding, change from run to run. Instead:
//   1. keys[i] = index[i] << 32 | i, then a bitonic sort of the keys: the keys are distinct, so
//      the sorted order is unique (no stability question), grouped by row, and by i within a row;
//   2. the thread at the first key of each row adds that row's dout rows in i order and writes
//      dx once: the order of every sum is fixed, and the same as the CPU's (index order).
// Bitonic sort: log2(n)^2 / 2 compare-exchange passes over n (padded to a power of two) keys; the
// passes over pairs closer than a block's tile run together in shared memory.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "tensor/factory.h"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kTile = 2048;  // keys a block sorts in shared memory (kTile / 2 threads)
constexpr uint64_t kPadKey = ~uint64_t{0};

template <int kBytes>
struct Element;
template <>
struct Element<4> {
  using type = uint32_t;
};
template <>
struct Element<8> {
  using type = uint64_t;
};

template <class E>
__global__ void gather_kernel(E* out, const E* x, const int64_t* index, int64_t outer, int64_t rows, int64_t n,
                              int64_t inner, int error_code, DeviceErrorRecord* error) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < outer * n * inner;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = e % inner, i = (e / inner) % n, o = e / (inner * n);
    const int64_t r = index[i];
    if (r < 0 || r >= rows) {
      if (c == 0 && o == 0) report_device_error(error, error_code, r, i, rows);
      out[e] = E(0);
      continue;
    }
    out[e] = x[(o * rows + r) * inner + c];
  }
}

__global__ void make_keys_kernel(uint64_t* keys, const int64_t* index, int64_t n, int64_t padded, int64_t rows) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < padded; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i < n ? index[i] : -1;
    // Indices out of range (reported by the forward) sort to the end with the padding, and are skipped.
    keys[i] = (r >= 0 && r < rows) ? (static_cast<uint64_t>(r) << 32 | static_cast<uint64_t>(i)) : kPadKey;
  }
}

// Compare-exchange of keys i and i ^ j: ascending where bit k of i is clear.
__device__ inline void compare_exchange(uint64_t& a, uint64_t& b, bool ascending) {
  if ((a > b) == ascending) {
    uint64_t t = a;
    a = b;
    b = t;
  }
}

// One pass with partner distance j >= kTile / 2... in global memory.
__global__ void bitonic_global_kernel(uint64_t* keys, int64_t padded, int64_t k, int64_t j) {
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < padded / 2; t += int64_t{gridDim.x} * blockDim.x) {
    const int64_t i = 2 * t - (t & (j - 1));  // the lower index of the t-th pair
    compare_exchange(keys[i], keys[i + j], (i & k) == 0);
  }
}

// Every pass with j < tile for the stages k_first..k_last (powers of two), on one tile of keys in
// shared memory. With k_first = 2 and k_last = tile it sorts each tile (alternating directions,
// as the next stage needs); with k_first = k_last = k > tile it finishes stage k after the global
// passes.
__global__ void bitonic_tile_kernel(uint64_t* keys, int64_t tile, int64_t k_first, int64_t k_last) {
  __shared__ uint64_t s[kTile];
  const int64_t base = blockIdx.x * tile;
  for (int64_t t = threadIdx.x; t < tile; t += blockDim.x) s[t] = keys[base + t];
  __syncthreads();
  for (int64_t k = k_first; k <= k_last; k *= 2) {
    for (int64_t j = min(k, tile) / 2; j >= 1; j /= 2) {
      for (int64_t t = threadIdx.x; t < tile / 2; t += blockDim.x) {
        const int64_t i = 2 * t - (t & (j - 1));
        compare_exchange(s[i], s[i + j], ((base + i) & k) == 0);
      }
      __syncthreads();
    }
  }
  for (int64_t t = threadIdx.x; t < tile; t += blockDim.x) keys[base + t] = s[t];
}

// One thread per (o, sorted position p, column c); the one at a row's first key sums the row.
template <class T>
__global__ void segment_sum_kernel(T* dx, const T* dout, const uint64_t* keys, int64_t outer, int64_t rows, int64_t n,
                                   int64_t inner) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < outer * n * inner;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t c = e % inner, p = (e / inner) % n, o = e / (inner * n);
    const uint64_t key = keys[p];
    if (key == kPadKey) continue;
    const uint64_t row = key >> 32;
    if (p > 0 && (keys[p - 1] >> 32) == row) continue;  // not the row's first key
    T sum = T(0);
    for (int64_t q = p; q < n && keys[q] != kPadKey && (keys[q] >> 32) == row; ++q) {
      const int64_t i = static_cast<int64_t>(keys[q] & 0xffffffffu);
      sum += dout[(o * n + i) * inner + c];
    }
    dx[(o * rows + static_cast<int64_t>(row)) * inner + c] = sum;
  }
}

}  // namespace

void index_select_forward(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t rows,
                          int64_t inner, bool embedding) {
  const int64_t n = index.numel(), total = outer * n * inner;
  if (total == 0) return;
  DeviceGuard guard(x.device().index);
  const int code = embedding ? kEmbeddingIndexOutOfRange : kIndexSelectOutOfRange;
  auto launch = [&]<class E>() {
    gather_kernel<E><<<grid_for(total, kThreads, 1 << 16), kThreads, 0, current_stream()>>>(
        static_cast<E*>(out.raw_data()), static_cast<const E*>(x.raw_data()), index.data<int64_t>(), outer, rows, n,
        inner, code, device_error_record());
  };
  if (dtype_size(x.dtype()) == 4) launch.template operator()<Element<4>::type>();
  else launch.template operator()<Element<8>::type>();
  CUDA_CHECK_LAUNCH();
}

void index_select_backward(const Tensor& dx, const Tensor& dout, const Tensor& index, int64_t outer, int64_t rows,
                           int64_t inner) {
  const int64_t n = index.numel();
  if (n == 0 || outer * inner == 0) return;
  MG_CHECK(n < (int64_t{1} << 32) && rows < (int64_t{1} << 32), "index_select: on cuda, the backward supports fewer "
           "than 2^32 indices and rows, got ", n, " and ", rows);
  DeviceGuard guard(dx.device().index);
  int64_t padded = 1;
  while (padded < n) padded *= 2;
  Tensor keys = empty({padded}, {.dtype = DType::Int64, .device = dx.device()});
  uint64_t* k = static_cast<uint64_t*>(keys.raw_data());
  cudaStream_t stream = current_stream();
  make_keys_kernel<<<grid_for(padded, kThreads, 1 << 16), kThreads, 0, stream>>>(k, index.data<int64_t>(), n, padded,
                                                                                   rows);
  const int64_t tile = std::min<int64_t>(padded, kTile);
  const unsigned tiles = static_cast<unsigned>(padded / tile);
  const int tile_threads = static_cast<int>(std::max<int64_t>(tile / 2, 1));
  bitonic_tile_kernel<<<tiles, tile_threads, 0, stream>>>(k, tile, 2, tile);
  for (int64_t stage = 2 * tile; stage <= padded; stage *= 2) {
    for (int64_t j = stage / 2; j >= tile; j /= 2)
      bitonic_global_kernel<<<grid_for(padded / 2, kThreads, 1 << 16), kThreads, 0, stream>>>(k, padded, stage, j);
    bitonic_tile_kernel<<<tiles, tile_threads, 0, stream>>>(k, tile, stage, stage);
  }
  dispatch_floating(dx.dtype(), "index_select", [&]<class T>() {
    segment_sum_kernel<T><<<grid_for(outer * n * inner, kThreads, 1 << 16), kThreads, 0, stream>>>(
        dx.data<T>(), dout.data<T>(), k, outer, rows, n, inner);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
