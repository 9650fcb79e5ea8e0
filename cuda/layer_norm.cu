// LayerNorm on the GPU (the CPU twins, with the derivation: ops/cpu/layer_norm.cpp). Per row of
// dim values, mean m, xhat = (x - m) r with r = rstd = (var + eps)^(-1/2), var the biased variance:
//   forward:  y_i = xhat_i w_i + b_i                                 (saves m and r per row)
//   backward: dx_i = r (g_i w_i - mean(g w) - xhat_i mean(g w xhat)),
//             dw_i = sum over rows of g_i xhat_i,  db_i = sum over rows of g_i
// As RMSNorm (cuda/rms_norm.cu): a block per row for the row sums (double, a fixed tree), and dw,
// db summed over rows in two passes of fixed order.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "tensor/factory.h"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowsPerChunk = 64;

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
__global__ void __launch_bounds__(kThreads) ln_forward_kernel(T* out, T* mean, T* rstd, const T* x, const T* weight,
                                                              const T* bias, int64_t dim, double eps) {
  __shared__ double scratch[kThreads];
  const int64_t base = blockIdx.x * dim;
  double s = 0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) s += static_cast<double>(x[base + i]);
  const double m = block_sum(s, scratch) / static_cast<double>(dim);
  double v = 0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const double c = static_cast<double>(x[base + i]) - m;
    v += c * c;
  }
  const double r = 1.0 / sqrt(block_sum(v, scratch) / static_cast<double>(dim) + eps);
  if (threadIdx.x == 0) {
    mean[blockIdx.x] = static_cast<T>(m);
    rstd[blockIdx.x] = static_cast<T>(r);
  }
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    T y = static_cast<T>((static_cast<double>(x[base + i]) - m) * r);
    if (weight) y *= weight[i];
    if (bias) y += bias[i];
    out[base + i] = y;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) ln_backward_input_kernel(T* dx, const T* dout, const T* x, const T* weight,
                                                                     const T* mean, const T* rstd, int64_t dim) {
  __shared__ double scratch[kThreads];
  const int64_t base = blockIdx.x * dim;
  const double m = mean[blockIdx.x], r = rstd[blockIdx.x];
  double sum_gw = 0, sum_gw_xhat = 0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const double gw = static_cast<double>(dout[base + i]) * (weight ? weight[i] : T(1));
    sum_gw += gw;
    sum_gw_xhat += gw * (static_cast<double>(x[base + i]) - m) * r;
  }
  const double mean_gw = block_sum(sum_gw, scratch) / static_cast<double>(dim);
  const double mean_gw_xhat = block_sum(sum_gw_xhat, scratch) / static_cast<double>(dim);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const double gw = static_cast<double>(dout[base + i]) * (weight ? weight[i] : T(1));
    const double xhat = (static_cast<double>(x[base + i]) - m) * r;
    dx[base + i] = static_cast<T>(r * (gw - mean_gw - xhat * mean_gw_xhat));
  }
}

// partial[chunk, 0, i] = sum of g_i xhat_i, partial[chunk, 1, i] = sum of g_i over the chunk's rows.
template <class T>
__global__ void ln_parameter_partial_kernel(double* partial, const T* dout, const T* x, const T* mean, const T* rstd,
                                            int64_t rows, int64_t dim) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  const int64_t chunk = blockIdx.y;
  if (i >= dim) return;
  double dw = 0, db = 0;
  const int64_t end = min(rows, (chunk + 1) * kRowsPerChunk);
  for (int64_t r = chunk * kRowsPerChunk; r < end; ++r) {
    const double g = dout[r * dim + i];
    dw += g * (static_cast<double>(x[r * dim + i]) - static_cast<double>(mean[r])) * static_cast<double>(rstd[r]);
    db += g;
  }
  partial[(chunk * 2) * dim + i] = dw;
  partial[(chunk * 2 + 1) * dim + i] = db;
}

template <class T>
__global__ void ln_parameter_total_kernel(T* dweight, T* dbias, const double* partial, int64_t chunks, int64_t dim) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= dim) return;
  double dw = 0, db = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    dw += partial[(c * 2) * dim + i];
    db += partial[(c * 2 + 1) * dim + i];
  }
  if (dweight) dweight[i] = static_cast<T>(dw);
  if (dbias) dbias[i] = static_cast<T>(db);
}

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void layer_norm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t rows = x.size(0), dim = x.size(1);
  if (rows == 0) return;
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
    for (int64_t r = 0; r < rows; r += 65535) {
      unsigned n = static_cast<unsigned>(std::min<int64_t>(rows - r, 65535));
      ln_forward_kernel<T><<<n, kThreads, 0, current_stream()>>>(out.data<T>() + r * dim, mean.data<T>() + r,
                                                                  rstd.data<T>() + r, x.data<T>() + r * dim,
                                                                  data_or_null<T>(weight), data_or_null<T>(bias), dim, eps);
    }
  });
  CUDA_CHECK_LAUNCH();
}

void layer_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                         const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd) {
  const int64_t rows = x.size(0), dim = x.size(1);
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "layer_norm", [&]<class T>() {
    for (int64_t r = 0; r < rows; r += 65535) {
      unsigned n = static_cast<unsigned>(std::min<int64_t>(rows - r, 65535));
      ln_backward_input_kernel<T><<<n, kThreads, 0, current_stream()>>>(
          dx.data<T>() + r * dim, dout.data<T>() + r * dim, x.data<T>() + r * dim, data_or_null<T>(weight),
          mean.data<T>() + r, rstd.data<T>() + r, dim);
    }
    if ((!dweight.defined() && !dbias.defined()) || dim == 0) return;
    const int64_t chunks = std::max<int64_t>((rows + kRowsPerChunk - 1) / kRowsPerChunk, 1);
    MG_CHECK(chunks <= 65535, "layer_norm: on cuda, at most ", 65535 * kRowsPerChunk, " rows, got ", rows);
    Tensor partial = empty({chunks, 2, dim}, {.dtype = DType::Float64, .device = x.device()});
    dim3 grid(grid_for(dim, kThreads), static_cast<unsigned>(chunks));
    ln_parameter_partial_kernel<T><<<grid, kThreads, 0, current_stream()>>>(
        partial.data<double>(), dout.data<T>(), x.data<T>(), mean.data<T>(), rstd.data<T>(), rows, dim);
    ln_parameter_total_kernel<T><<<grid_for(dim, kThreads), kThreads, 0, current_stream()>>>(
        data_or_null<T>(dweight), data_or_null<T>(dbias), partial.data<double>(), chunks, dim);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
