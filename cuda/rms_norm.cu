// RMSNorm on the GPU (the CPU twins, with the derivation: ops/cpu/rms_norm.cpp). Per row of dim
// values, r = rstd = (mean(x^2) + eps)^(-1/2):
//   forward:  y_i = x_i r w_i                                      (saves r per row)
//   backward: dx_j = r (g_j w_j - x_j r^2 (sum_i g_i w_i x_i) / dim),  dw_i = sum over rows of g_i x_i r
// One block per row for the row sums (in double, a fixed tree). dw sums over rows in two passes:
// partial sums over fixed chunks of rows, then the chunks added in order: the same bits every run.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "tensor/factory.h"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowsPerChunk = 64;  // dw: rows one partial sum covers

__device__ double block_sum(double v, double* scratch) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s >= 1; s /= 2) {
    if (threadIdx.x < s) scratch[threadIdx.x] += scratch[threadIdx.x + s];
    __syncthreads();
  }
  double total = scratch[0];
  __syncthreads();
  return total;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    rms_forward_kernel(T* out, T* rstd, const T* x, const T* weight, int64_t dim, double eps) {
  __shared__ double scratch[kThreads];
  const int64_t base = blockIdx.x * dim;
  double s = 0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) s += static_cast<double>(x[base + i]) * x[base + i];
  const double inv = 1.0 / sqrt(block_sum(s, scratch) / static_cast<double>(dim) + eps);
  const T r = static_cast<T>(inv);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads)
    out[base + i] = weight ? x[base + i] * r * weight[i] : x[base + i] * r;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    rms_backward_input_kernel(T* dx, const T* dout, const T* x, const T* weight, const T* rstd, int64_t dim) {
  __shared__ double scratch[kThreads];
  const int64_t base = blockIdx.x * dim;
  double dot = 0;  // sum_i g_i w_i x_i
  for (int64_t i = threadIdx.x; i < dim; i += kThreads)
    dot += static_cast<double>(dout[base + i]) * (weight ? weight[i] : T(1)) * x[base + i];
  dot = block_sum(dot, scratch);
  const double s = rstd[blockIdx.x];
  const double k = s * s * dot / static_cast<double>(dim);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const double gw = static_cast<double>(dout[base + i]) * (weight ? weight[i] : T(1));
    dx[base + i] = static_cast<T>(s * (gw - x[base + i] * k));
  }
}

// partial[chunk, i] = sum over the chunk's rows of g_i x_i r; threads along i (coalesced).
template <class T>
__global__ void rms_weight_partial_kernel(double* partial, const T* dout, const T* x, const T* rstd, int64_t rows,
                                          int64_t dim) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (i >= dim) return;
  double acc = 0;
  const int64_t end = min(rows, (chunk + 1) * kRowsPerChunk);
  for (int64_t r = chunk * kRowsPerChunk; r < end; ++r)
    acc += static_cast<double>(dout[r * dim + i]) * x[r * dim + i] * static_cast<double>(rstd[r]);
  partial[chunk * dim + i] = acc;
}

template <class T>
__global__ void rms_weight_total_kernel(T* dweight, const double* partial, int64_t chunks, int64_t dim) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= dim) return;
  double total = 0;
  for (int64_t c = 0; c < chunks; ++c) total += partial[c * dim + i];
  dweight[i] = static_cast<T>(total);
}

template <class T>
const T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void rms_norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, double eps) {
  const int64_t rows = x.size(0), dim = x.size(1);
  if (rows == 0) return;
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "rms_norm", [&]<class T>() {
    for (int64_t r = 0; r < rows; r += 65535) {
      unsigned n = static_cast<unsigned>(std::min<int64_t>(rows - r, 65535));
      rms_forward_kernel<T><<<n, kThreads, 0, current_stream()>>>(out.data<T>() + r * dim, rstd.data<T>() + r,
                                                                   x.data<T>() + r * dim, data_or_null<T>(weight), dim, eps);
    }
  });
  CUDA_CHECK_LAUNCH();
}

void rms_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                       const Tensor& weight, const Tensor& rstd) {
  const int64_t rows = x.size(0), dim = x.size(1);
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "rms_norm", [&]<class T>() {
    for (int64_t r = 0; r < rows; r += 65535) {
      unsigned n = static_cast<unsigned>(std::min<int64_t>(rows - r, 65535));
      rms_backward_input_kernel<T><<<n, kThreads, 0, current_stream()>>>(
          dx.data<T>() + r * dim, dout.data<T>() + r * dim, x.data<T>() + r * dim, data_or_null<T>(weight),
          rstd.data<T>() + r, dim);
    }
    if (!dweight.defined() || dim == 0) return;
    const int64_t chunks = std::max<int64_t>((rows + kRowsPerChunk - 1) / kRowsPerChunk, 1);
    MG_CHECK(chunks <= 65535, "rms_norm: on cuda, at most ", 65535 * kRowsPerChunk, " rows, got ", rows);
    Tensor partial = empty({chunks, dim}, {.dtype = DType::Float64, .device = x.device()});
    dim3 grid(grid_for(dim, kThreads), static_cast<unsigned>(chunks));
    rms_weight_partial_kernel<T><<<grid, kThreads, 0, current_stream()>>>(partial.data<double>(), dout.data<T>(),
                                                                           x.data<T>(), rstd.data<T>(), rows, dim);
    rms_weight_total_kernel<T><<<grid_for(dim, kThreads), kThreads, 0, current_stream()>>>(
        dweight.data<T>(), partial.data<double>(), chunks, dim);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
