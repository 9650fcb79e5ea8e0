// The causal depthwise conv1d on the GPU (the CPU twins: ops/cpu/conv1d.cpp):
//   forward:  out[b, c, t]  = bias[c] + sum_k weight[c, k] * x[b, c, t - (K - 1) + k]   (x = 0 at t < 0)
//   backward: dx[b, c, s]   = sum_k weight[c, k] * dout[b, c, s + (K - 1) - k]          (terms with t < L)
//             dweight[c, k] = sum_{b, t} dout[b, c, t] * x[b, c, t - (K - 1) + k]
//             dbias[c]      = sum_{b, t} dout[b, c, t]
// out and dx: one thread per element, consecutive threads along t (coalesced). dweight and dbias:
// one block per channel, its threads strided over (b, t), sums in double reduced by a fixed tree.
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxKernel = 16;  // K up to this keeps the per-thread sums in registers

template <class T>
__global__ void conv_forward_kernel(T* out, const T* x, const T* weight, const T* bias, int64_t B, int64_t C,
                                    int64_t L, int64_t K) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < B * C * L; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = e % L, c = (e / L) % C;
    const T* row = x + (e - t);  // x[b, c, 0]
    T acc = bias ? bias[c] : T(0);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t s = t - (K - 1) + k;
      if (s >= 0) acc += weight[c * K + k] * row[s];
    }
    out[e] = acc;
  }
}

template <class T>
__global__ void conv_backward_input_kernel(T* dx, const T* dout, const T* weight, int64_t B, int64_t C, int64_t L,
                                           int64_t K) {
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < B * C * L; e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t s = e % L, c = (e / L) % C;
    const T* row = dout + (e - s);
    T acc = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t t = s + (K - 1) - k;
      if (t < L) acc += weight[c * K + k] * row[t];
    }
    dx[e] = acc;
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    conv_backward_weight_kernel(T* dweight, T* dbias, const T* dout, const T* x, int64_t B, int64_t C, int64_t L,
                                int64_t K) {
  __shared__ double partial[kThreads];
  const int64_t c = blockIdx.x;
  double acc[kMaxKernel + 1] = {};  // dweight[c, 0..K-1], then dbias[c]
  for (int64_t bt = threadIdx.x; bt < B * L; bt += kThreads) {
    const int64_t b = bt / L, t = bt % L;
    const int64_t base = (b * C + c) * L;
    const double g = dout[base + t];
#pragma unroll
    for (int k = 0; k < kMaxKernel; ++k) {
      const int64_t s = t - (K - 1) + k;
      if (k < K && s >= 0) acc[k] += g * static_cast<double>(x[base + s]);
    }
    acc[kMaxKernel] += g;
  }
  // One fixed tree per output value.
  for (int k = 0; k <= kMaxKernel; ++k) {
    if (k >= K && k != kMaxKernel) continue;
    partial[threadIdx.x] = acc[k];
    __syncthreads();
    for (int s = kThreads / 2; s >= 1; s /= 2) {
      if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if (k < K && dweight) dweight[c * K + k] = static_cast<T>(partial[0]);
      if (k == kMaxKernel && dbias) dbias[c] = static_cast<T>(partial[0]);
    }
    __syncthreads();
  }
}

// state (B, C, K): shifted left by one, x appended, then out = bias + <weight, state>.
template <class T>
__global__ void conv_step_kernel(T* out, T* state, const T* x, int64_t x_row, const T* weight, const T* bias,
                                 int64_t B, int64_t C, int64_t K) {
  for (int64_t bc = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; bc < B * C; bc += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = bc / C, c = bc % C;
    T* window = state + bc * K;
    for (int64_t k = 0; k + 1 < K; ++k) window[k] = window[k + 1];
    window[K - 1] = x[b * x_row + c];
    T acc = bias ? bias[c] : T(0);
    for (int64_t k = 0; k < K; ++k) acc += weight[c * K + k] * window[k];
    out[bc] = acc;
  }
}

template <class T>
T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void causal_conv1d_forward(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2), K = weight.size(1);
  if (B * C * L == 0) return;
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "causal_conv1d", [&]<class T>() {
    conv_forward_kernel<T><<<grid_for(B * C * L, kThreads, 1 << 16), kThreads, 0, current_stream()>>>(
        out.data<T>(), x.data<T>(), weight.data<T>(), data_or_null<T>(bias), B, C, L, K);
  });
  CUDA_CHECK_LAUNCH();
}

void causal_conv1d_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                            const Tensor& x, const Tensor& weight) {
  const int64_t B = x.size(0), C = x.size(1), L = x.size(2), K = weight.size(1);
  MG_CHECK(K <= kMaxKernel, "causal_conv1d: on cuda, the kernel size is at most ", kMaxKernel, ", got weight ",
           weight.shape());
  DeviceGuard guard(x.device().index);
  dispatch_floating(x.dtype(), "causal_conv1d", [&]<class T>() {
    if (dx.defined() && B * C * L > 0)
      conv_backward_input_kernel<T><<<grid_for(B * C * L, kThreads, 1 << 16), kThreads, 0, current_stream()>>>(
          dx.data<T>(), dout.data<T>(), weight.data<T>(), B, C, L, K);
    if ((dweight.defined() || dbias.defined()) && C > 0)
      conv_backward_weight_kernel<T><<<static_cast<unsigned>(C), kThreads, 0, current_stream()>>>(
          data_or_null<T>(dweight), data_or_null<T>(dbias), dout.data<T>(), x.data<T>(), B, C, L, K);
  });
  CUDA_CHECK_LAUNCH();
}

void causal_conv1d_step(const Tensor& out, const Tensor& state, const Tensor& x, const Tensor& weight,
                        const Tensor& bias) {
  const int64_t B = state.size(0), C = state.size(1), K = state.size(2);
  if (B * C == 0) return;
  DeviceGuard guard(state.device().index);
  dispatch_floating(x.dtype(), "causal_conv1d_step", [&]<class T>() {
    conv_step_kernel<T><<<grid_for(B * C, kThreads, 1 << 16), kThreads, 0, current_stream()>>>(
        out.data<T>(), state.data<T>(), x.data<T>(), x.strides()[0], weight.data<T>(), data_or_null<T>(bias), B, C, K);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
