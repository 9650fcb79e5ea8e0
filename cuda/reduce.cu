// Reductions on CUDA: sum_to, max/argmax, the sum of squares of many tensors.
//
// sum_to: out = in summed over the dims where out has size 1 (sum, mean, and the
// backward of broadcasting).
//
// Split the input's dims into kept ones (they index the output o) and reduced ones (index r):
//   out[o] = sum over r of in[keep_offset(o) + reduce_offset(r)]
// A block of 256 threads covers `out_lanes` outputs times a chunk of r:
//   - row mode (out_lanes 1): all 256 threads share one output and read consecutive r, coalesced
//     when the reduced dims are the innermost ones (sum over the last dim, sum of everything);
//   - column mode (out_lanes 32): 32 neighbouring outputs, 8 threads each along r, coalesced when
//     the kept dims are innermost (a bias gradient summing over the batch).
// Each thread sums its share of r in order, then the block adds the 256 partial sums in a fixed
// tree. Long reductions are cut in chunks of fixed length (one block each), whose partial sums
// are added in a second pass, in chunk order. Nothing depends on timing or on the GPU model, so
// the result is deterministic. Accumulation is in double, as on the CPU.
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/multi_tensor.cuh"
#include "cuda/strided.cuh"
#include "tensor/factory.h"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kChunkElements = 1 << 15;  // input elements per block, at most
constexpr int64_t kMaxChunks = 65535;        // gridDim.y's limit

using Acc = double;

template <class In, class Out, class Index>
__global__ void __launch_bounds__(kThreads)
    sum_kernel(Out* out, const In* in, Index num_out, Index reduce_len, Index chunk_len, int out_lanes,
               StridedOffsets<1, Index> keep, StridedOffsets<1, Index> reduce) {
  __shared__ Acc partial[kThreads];
  int tid = threadIdx.x, r_lanes = kThreads / out_lanes;
  int lane_o = tid % out_lanes, lane_r = tid / out_lanes;
  Index o = static_cast<Index>(blockIdx.x) * out_lanes + lane_o;
  Index begin = static_cast<Index>(blockIdx.y) * chunk_len;
  Index end = begin + chunk_len < reduce_len ? begin + chunk_len : reduce_len;
  Acc acc = 0;
  if (o < num_out) {
    int64_t base[1], off[1];
    keep.get(o, base);
#pragma unroll 4
    for (Index r = begin + lane_r; r < end; r += r_lanes) {
      reduce.get(r, off);
      acc += static_cast<Acc>(in[base[0] + off[0]]);
    }
  }
  partial[tid] = acc;
  __syncthreads();
  for (int s = r_lanes / 2; s >= 1; s /= 2) {  // fixed tree over the r lanes of each output
    if (lane_r < s) partial[tid] += partial[tid + s * out_lanes];
    __syncthreads();
  }
  // One chunk: the final sum. Several: this chunk's sum, at out[chunk][o] of a (chunks, num_out) buffer.
  if (lane_r == 0 && o < num_out) out[static_cast<int64_t>(blockIdx.y) * num_out + o] = static_cast<Out>(partial[tid]);
}

template <class In, class Out, class Index>
void launch_sum(Out* out, const In* in, int64_t num_out, int64_t reduce_len, int64_t chunk_len, int out_lanes,
                const Layout<1>& keep, const Layout<1>& reduce) {
  dim3 grid(static_cast<unsigned>((num_out + out_lanes - 1) / out_lanes),
            static_cast<unsigned>((reduce_len + chunk_len - 1) / chunk_len));
  sum_kernel<In, Out, Index><<<grid, kThreads, 0, current_stream()>>>(out, in, static_cast<Index>(num_out), static_cast<Index>(reduce_len),
                                                 static_cast<Index>(chunk_len), out_lanes,
                                                 make_offsets<1, Index>(keep, "sum"),
                                                 make_offsets<1, Index>(reduce, "sum"));
  CUDA_CHECK_LAUNCH();
}

// out[o] = sum over r of in[...] (see the top of the file). `device` is current.
template <class In, class Out>
void sum_strided(Out* out, const In* in, int64_t num_out, int64_t reduce_len, const Layout<1>& keep,
                 const Layout<1>& reduce, int device) {
  // Row mode when the reduced dims are the inner ones and long enough to keep 256 threads busy.
  bool row_mode = num_out == 1 || (reduce_len >= kThreads && reduce.strides[0][0] < keep.strides[0][0]);
  int out_lanes = row_mode ? 1 : 32;
  int64_t chunk_len = kChunkElements / out_lanes;
  chunk_len = std::max(chunk_len, (reduce_len + kMaxChunks - 1) / kMaxChunks);
  int64_t chunks = (reduce_len + chunk_len - 1) / chunk_len;
  // Indices stay below num_out, reduce_len and (for the second pass) chunks * num_out.
  bool small = fits_32bit_index(num_out * reduce_len) && fits_32bit_index(chunks * num_out);
  auto launch = [&](auto* target) {
    using Target = std::remove_pointer_t<decltype(target)>;
    if (small) launch_sum<In, Target, uint32_t>(target, in, num_out, reduce_len, chunk_len, out_lanes, keep, reduce);
    else launch_sum<In, Target, int64_t>(target, in, num_out, reduce_len, chunk_len, out_lanes, keep, reduce);
  };
  if (chunks == 1) return launch(out);
  // First pass into partial sums (chunks, num_out); the second sums them over the chunks.
  Tensor partials = empty({chunks, num_out}, {.dtype = DType::Float64, .device = Device::cuda(device)});
  launch(partials.data<Acc>());
  Layout<1> keep2 = coalesce<1>({num_out}, {Shape{1}});
  Layout<1> reduce2 = coalesce<1>({chunks}, {Shape{num_out}});
  sum_strided<Acc, Out>(out, partials.data<Acc>(), num_out, chunks, keep2, reduce2, device);
}

}  // namespace

void sum_to(const Tensor& out, const Tensor& in) {
  MG_ASSERT(out.dim() == in.dim() && out.is_contiguous() && out.dtype() == in.dtype(), "sum_to: bad output");
  if (out.numel() == 0) return;
  if (in.numel() == 0) return fill(out, 0.0);
  if (out.shape() == in.shape()) return copy(out, in);
  Shape keep_sizes, keep_strides, reduce_sizes, reduce_strides;
  for (int64_t d = 0; d < in.dim(); ++d) {
    bool reduced = out.size(d) == 1 && in.size(d) != 1;
    MG_ASSERT(reduced || out.size(d) == in.size(d), "sum_to: ", in.shape(), " does not reduce to ", out.shape());
    (reduced ? reduce_sizes : keep_sizes).push_back(in.size(d));
    (reduced ? reduce_strides : keep_strides).push_back(in.strides()[d]);
  }
  Layout<1> keep = coalesce<1>(keep_sizes, {keep_strides});
  Layout<1> reduce = coalesce<1>(reduce_sizes, {reduce_strides});
  DeviceGuard guard(out.device().index);
  dispatch_floating(in.dtype(), "sum", [&]<class T>() {
    sum_strided<T, T>(out.data<T>(), in.data<T>(), out.numel(), in.numel() / out.numel(), keep, reduce,
                      out.device().index);
  });
}

}  // namespace mg::cuda

// ---- max and argmax along one dimension; the gradient of max

namespace mg::cuda {

namespace {

// Whether candidate (v, i) beats the current best (bv, bi): NaN beats numbers (as on the CPU),
// then the larger value, then the smaller index. The order of comparisons therefore does not
// matter, and the winner is the first index attaining the maximum.
template <class T>
__device__ bool beats(T v, int64_t i, T bv, int64_t bi) {
  bool nan = v != v, bnan = bv != bv;
  if (nan != bnan) return nan;
  if (!nan && v != bv) return v > bv;
  return i < bi;
}

// inner > 1: one thread per (o, j), walking k in order (coalesced across j).
template <class T>
__global__ void max_columns_kernel(T* values, int64_t* indices, const T* x, int64_t outer, int64_t size,
                                   int64_t inner) {
  for (int64_t oj = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; oj < outer * inner;
       oj += int64_t{gridDim.x} * blockDim.x) {
    int64_t o = oj / inner, j = oj % inner;
    const T* column = x + o * size * inner + j;
    T best = column[0];
    int64_t best_k = 0;
    for (int64_t k = 1; k < size; ++k) {
      T v = column[k * inner];
      if (beats(v, k, best, best_k)) best = v, best_k = k;
    }
    values[oj] = best;
    indices[oj] = best_k;
  }
}

// inner == 1: one block per row (a row of a vocabulary's logits is long), threads strided along
// it, then a tree over the block's candidates.
template <class T>
__global__ void max_rows_kernel(T* values, int64_t* indices, const T* x, int64_t size) {
  __shared__ T best_v[256];
  __shared__ int64_t best_i[256];
  const T* row = x + blockIdx.x * size;
  T bv = row[0];
  int64_t bi = 0;
  for (int64_t k = threadIdx.x; k < size; k += blockDim.x)
    if (beats(row[k], k, bv, bi)) bv = row[k], bi = k;
  best_v[threadIdx.x] = bv;
  best_i[threadIdx.x] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s >= 1; s /= 2) {
    if (threadIdx.x < s && beats(best_v[threadIdx.x + s], best_i[threadIdx.x + s], best_v[threadIdx.x], best_i[threadIdx.x])) {
      best_v[threadIdx.x] = best_v[threadIdx.x + s];
      best_i[threadIdx.x] = best_i[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    values[blockIdx.x] = best_v[0];
    indices[blockIdx.x] = best_i[0];
  }
}

// Each (o, j) writes one element of dx: no two threads write the same place.
template <class T>
__global__ void max_backward_kernel(T* dx, const T* dout, const int64_t* indices, int64_t outer, int64_t size,
                                    int64_t inner) {
  for (int64_t oj = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; oj < outer * inner;
       oj += int64_t{gridDim.x} * blockDim.x) {
    int64_t o = oj / inner, j = oj % inner;
    dx[(o * size + indices[oj]) * inner + j] = dout[oj];
  }
}

}  // namespace

void max_forward(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t outer, int64_t size,
                 int64_t inner) {
  if (outer * inner == 0) return;
  DeviceGuard guard(x.device().index);
  dispatch_all(x.dtype(), [&]<class T>() {
    if (inner == 1) {
      for (int64_t o = 0; o < outer; o += 65535)  // gridDim.x of one launch
        max_rows_kernel<T><<<static_cast<unsigned>(std::min<int64_t>(outer - o, 65535)), 256, 0, current_stream()>>>(
            values.data<T>() + o, indices.data<int64_t>() + o, x.data<T>() + o * size, size);
    } else {
      max_columns_kernel<T><<<grid_for(outer * inner, 256, 65535), 256, 0, current_stream()>>>(
          values.data<T>(), indices.data<int64_t>(), x.data<T>(), outer, size, inner);
    }
  });
  CUDA_CHECK_LAUNCH();
}

void max_backward(const Tensor& dx, const Tensor& dout, const Tensor& indices, int64_t outer, int64_t size,
                  int64_t inner) {
  if (outer * inner == 0) return;
  DeviceGuard guard(dx.device().index);
  dispatch_floating(dx.dtype(), "max", [&]<class T>() {
    max_backward_kernel<T><<<grid_for(outer * inner, 256, 65535), 256, 0, current_stream()>>>(
        dx.data<T>(), dout.data<T>(), indices.data<int64_t>(), outer, size, inner);
  });
  CUDA_CHECK_LAUNCH();
}

// ---- the sum of squares of many tensors (the global gradient norm)

namespace {

// One block per chunk: its partial sum in double, by a fixed tree.
template <class T>
__global__ void __launch_bounds__(kThreads) chunk_squares_kernel(double* partials, const MultiTensorRow* rows,
                                                                  int count) {
  __shared__ double partial[kThreads];
  const int64_t chunk = blockIdx.x;
  const MultiTensorRow& row = rows[find_row(rows, count, chunk)];
  const T* data = static_cast<const T*>(row.ptrs[0]);
  const int64_t begin = (chunk - row.first_chunk) * kMultiTensorChunk;
  const int64_t end = min(row.numel, begin + kMultiTensorChunk);
  double acc = 0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    double v = static_cast<double>(data[i]);
    acc += v * v;
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s >= 1; s /= 2) {
    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[chunk] = partial[0];
}

}  // namespace

void sum_of_squares(const Tensor& out, const TensorList& tensors) {
  DeviceGuard guard(out.device().index);
  std::vector<MultiTensorRow> rows;
  for (const Tensor& t : tensors) {
    MG_ASSERT(t.is_contiguous() && t.dtype() == tensors[0].dtype(), "sum_of_squares: tensors must be contiguous, one dtype");
    rows.push_back({{const_cast<void*>(t.raw_data()), nullptr, nullptr, nullptr}, t.numel(), 0, {0, 0, 0}});
  }
  MultiTensorTable table = upload_rows(rows, out.device());
  if (table.chunks == 0) return fill(out, 0.0);
  Tensor partials = empty({table.chunks}, {.dtype = DType::Float64, .device = out.device()});
  dispatch_floating(tensors[0].dtype(), "sum_of_squares", [&]<class T>() {
    chunk_squares_kernel<T><<<static_cast<unsigned>(table.chunks), kThreads, 0, current_stream()>>>(
        partials.data<double>(), table.rows, table.count);
  });
  CUDA_CHECK_LAUNCH();
  sum_to(out.view({1}), partials);  // the chunks' sums, added by sum_to's fixed order
}

}  // namespace mg::cuda
