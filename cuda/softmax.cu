// softmax, log_softmax and cross_entropy on the GPU (the CPU twins: ops/cpu/softmax.cpp).
//   softmax(x)_c     = exp(x_c - max) / sum_k exp(x_k - max)
//   log_softmax(x)_c = (x_c - max) - log sum_k exp(x_k - max)
// A row is the C values along the softmax dimension of an (outer, C, inner) view. When inner == 1
// (the usual last-dim softmax) one block takes a row and its threads stride along it; otherwise
// one thread takes a column (o, j), its neighbours the next columns, so loads stay coalesced.
// Sums accumulate in double, as on the CPU, in a fixed order (per thread, then a fixed tree).
#include <cfloat>

#include "cuda/device_math.cuh"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "tensor/factory.h"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;

// The block's total of v (every thread gets it). `scratch` holds kThreads values.
template <class T, class Op>
__device__ T block_reduce(T v, T* scratch, Op op) {
  scratch[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s >= 1; s /= 2) {
    if (threadIdx.x < s) scratch[threadIdx.x] = op(scratch[threadIdx.x], scratch[threadIdx.x + s]);
    __syncthreads();
  }
  T total = scratch[0];
  __syncthreads();  // scratch is reused by the next reduction
  return total;
}

struct Max {
  __device__ double operator()(double a, double b) const { return a > b || a != a ? a : b; }
};
struct Plus {
  __device__ double operator()(double a, double b) const { return a + b; }
};

// The max and log of the shifted sum of one row (stride between its elements: `step`).
template <class T>
__device__ void row_stats(const T* row, int64_t C, int64_t step, double* scratch, double& max, double& log_sum) {
  double m = -DBL_MAX * 2;  // -inf
  for (int64_t c = threadIdx.x; c < C; c += kThreads) m = Max{}(m, static_cast<double>(row[c * step]));
  max = block_reduce(m, scratch, Max{});
  double s = 0;
  for (int64_t c = threadIdx.x; c < C; c += kThreads) s += exp(static_cast<double>(row[c * step]) - max);
  log_sum = log(block_reduce(s, scratch, Plus{}));
}

template <class T>
__global__ void __launch_bounds__(kThreads) softmax_rows_kernel(T* y, const T* x, int64_t C, bool log_out) {
  __shared__ double scratch[kThreads];
  const T* row = x + blockIdx.x * C;
  T* out = y + blockIdx.x * C;
  double max, log_sum;
  row_stats(row, C, 1, scratch, max, log_sum);
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    double shifted = static_cast<double>(row[c]) - max;
    out[c] = static_cast<T>(log_out ? shifted - log_sum : exp(shifted - log_sum));
  }
}

template <class T>
__global__ void softmax_columns_kernel(T* y, const T* x, int64_t outer, int64_t C, int64_t inner, bool log_out) {
  for (int64_t oj = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; oj < outer * inner;
       oj += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = oj / inner, j = oj % inner;
    const T* column = x + o * C * inner + j;
    T* out = y + o * C * inner + j;
    double max = -DBL_MAX * 2;
    for (int64_t c = 0; c < C; ++c) max = Max{}(max, static_cast<double>(column[c * inner]));
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += exp(static_cast<double>(column[c * inner]) - max);
    const double log_sum = log(sum);
    for (int64_t c = 0; c < C; ++c) {
      double shifted = static_cast<double>(column[c * inner]) - max;
      out[c * inner] = static_cast<T>(log_out ? shifted - log_sum : exp(shifted - log_sum));
    }
  }
}

// softmax:      dx = y * (dy - sum_c dy * y)
// log_softmax:  dx = dy - exp(y) * sum_c dy
template <class T>
__global__ void __launch_bounds__(kThreads) softmax_backward_rows_kernel(T* dx, const T* dy, const T* y, int64_t C,
                                                                         bool log_out) {
  __shared__ double scratch[kThreads];
  const int64_t base = blockIdx.x * C;
  double s = 0;
  for (int64_t c = threadIdx.x; c < C; c += kThreads)
    s += log_out ? static_cast<double>(dy[base + c]) : static_cast<double>(dy[base + c]) * y[base + c];
  const double total = block_reduce(s, scratch, Plus{});
  for (int64_t c = threadIdx.x; c < C; c += kThreads) {
    const double g = dy[base + c], v = y[base + c];
    dx[base + c] = static_cast<T>(log_out ? g - exp(v) * total : v * (g - total));
  }
}

template <class T>
__global__ void softmax_backward_columns_kernel(T* dx, const T* dy, const T* y, int64_t outer, int64_t C,
                                                int64_t inner, bool log_out) {
  for (int64_t oj = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; oj < outer * inner;
       oj += int64_t{gridDim.x} * blockDim.x) {
    const int64_t base = (oj / inner) * C * inner + oj % inner;
    double total = 0;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = base + c * inner;
      total += log_out ? static_cast<double>(dy[i]) : static_cast<double>(dy[i]) * y[i];
    }
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = base + c * inner;
      const double g = dy[i], v = y[i];
      dx[i] = static_cast<T>(log_out ? g - exp(v) * total : v * (g - total));
    }
  }
}

// Per row n: lse[n] = logsumexp(logits[n]); row_loss[n] = lse[n] - logits[n, t_n] and counted[n]
// = 1 for a row that counts, both 0 for an ignored one (or a target out of range, reported).
template <class T>
__global__ void __launch_bounds__(kThreads)
    cross_entropy_rows_kernel(double* lse, double* row_loss, double* counted, const T* logits, const int64_t* targets,
                              int64_t C, int64_t ignore_index, DeviceErrorRecord* error) {
  __shared__ double scratch[kThreads];
  const int64_t n = blockIdx.x;
  const T* row = logits + n * C;
  double max, log_sum;
  row_stats(row, C, 1, scratch, max, log_sum);
  if (threadIdx.x != 0) return;
  const int64_t t = targets[n];
  const bool valid = t != ignore_index && t >= 0 && t < C;
  if (t != ignore_index && !valid) report_device_error(error, kCrossEntropyTargetOutOfRange, t, n, C);
  lse[n] = max + log_sum;
  row_loss[n] = valid ? max + log_sum - static_cast<double>(row[t]) : 0.0;
  counted[n] = valid ? 1.0 : 0.0;
}

template <class T>
__global__ void mean_kernel(T* loss, const double* total, const double* count) {
  *loss = static_cast<T>(*total / *count);  // 0 / 0 = nan when every row is ignored, as on the CPU
}

template <class T>
__global__ void cross_entropy_backward_kernel(T* dlogits, const T* logits, const int64_t* targets, const double* lse,
                                              const double* count, const T* dloss, int64_t N, int64_t C,
                                              int64_t ignore_index) {
  const double scale = *count > 0 ? static_cast<double>(*dloss) / *count : 0.0;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < N * C; i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t n = i / C, c = i % C, t = targets[n];
    const bool valid = t != ignore_index && t >= 0 && t < C;
    const double p = exp(static_cast<double>(logits[i]) - lse[n]);
    dlogits[i] = valid ? static_cast<T>((p - (c == t ? 1.0 : 0.0)) * scale) : T(0);
  }
}

}  // namespace

void softmax_forward(const Tensor& y, const Tensor& x, int64_t outer, int64_t C, int64_t inner, bool log) {
  if (outer * C * inner == 0) return;
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "softmax", [&]<class T>() {
    if (inner == 1) {
      for (int64_t o = 0; o < outer; o += 65535)
        softmax_rows_kernel<T><<<static_cast<unsigned>(std::min<int64_t>(outer - o, 65535)), kThreads, 0,
                                 current_stream()>>>(y.data<T>() + o * C, x.data<T>() + o * C, C, log);
    } else {
      softmax_columns_kernel<T><<<grid_for(outer * inner, kThreads, 65535), kThreads, 0, current_stream()>>>(
          y.data<T>(), x.data<T>(), outer, C, inner, log);
    }
  });
  CUDA_CHECK_LAUNCH();
}

void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, int64_t outer, int64_t C, int64_t inner,
                      bool log) {
  if (outer * C * inner == 0) return;
  DeviceGuard guard(dx.device().index);
  dispatch_floating(dx.dtype(), "softmax", [&]<class T>() {
    if (inner == 1) {
      for (int64_t o = 0; o < outer; o += 65535)
        softmax_backward_rows_kernel<T><<<static_cast<unsigned>(std::min<int64_t>(outer - o, 65535)), kThreads, 0,
                                          current_stream()>>>(dx.data<T>() + o * C, dy.data<T>() + o * C,
                                                              y.data<T>() + o * C, C, log);
    } else {
      softmax_backward_columns_kernel<T><<<grid_for(outer * inner, kThreads, 65535), kThreads, 0, current_stream()>>>(
          dx.data<T>(), dy.data<T>(), y.data<T>(), outer, C, inner, log);
    }
  });
  CUDA_CHECK_LAUNCH();
}

void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& count, const Tensor& logits,
                           const Tensor& targets, int64_t ignore_index) {
  const int64_t C = logits.size(-1), N = targets.numel();
  DeviceGuard guard(logits.device().index);
  const TensorOptions f64{.dtype = DType::Float64, .device = logits.device()};
  Tensor row_loss = empty({N}, f64), counted = empty({N}, f64), total = empty({1}, f64);
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    for (int64_t n = 0; n < N; n += 65535) {  // C >= 1 (the op checks)
      unsigned rows = static_cast<unsigned>(std::min<int64_t>(N - n, 65535));
      cross_entropy_rows_kernel<T><<<rows, kThreads, 0, current_stream()>>>(
          lse.data<double>() + n, row_loss.data<double>() + n, counted.data<double>() + n, logits.data<T>() + n * C,
          targets.data<int64_t>() + n, C, ignore_index, device_error_record());
    }
    CUDA_CHECK_LAUNCH();
    sum_to(total, row_loss.view({N}));  // in the fixed order of sum_to, like the CPU's row order
    sum_to(count.view({1}), counted.view({N}));
    mean_kernel<T><<<1, 1, 0, current_stream()>>>(loss.data<T>(), total.data<double>(), count.data<double>());
  });
  CUDA_CHECK_LAUNCH();
}

void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            const Tensor& count, const Tensor& dloss, int64_t ignore_index) {
  const int64_t C = logits.size(-1), N = targets.numel();
  if (N * C == 0) return;
  DeviceGuard guard(logits.device().index);
  dispatch_floating(logits.dtype(), "cross_entropy", [&]<class T>() {
    cross_entropy_backward_kernel<T><<<grid_for(N * C, kThreads, 1 << 16), kThreads, 0, current_stream()>>>(
        dlogits.data<T>(), logits.data<T>(), targets.data<int64_t>(), lse.data<double>(), count.data<double>(),
        dloss.data<T>(), N, C, ignore_index);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
