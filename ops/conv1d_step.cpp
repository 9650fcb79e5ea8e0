// causal_conv1d_step: the recurrent form of the causal depthwise convolution (ops/conv1d.h).
#include "autograd/grad_mode.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/conv1d.h"
#include "ops/cpu/parallel.h"
#include "tensor/factory.h"

namespace mg {

namespace {
// state (B, C, K) contiguous; x (B, C) with row stride x_row; weight (C, K); bias (C) or null.
template <class T>
void conv1d_step_cpu(T* out, T* state, const T* x, int64_t x_row, const T* weight, const T* bias, int64_t batch,
                     int64_t channels, int64_t K) {
  parallel_for(0, batch * channels, 4096, [&](int64_t begin, int64_t end) {
    for (int64_t bc = begin; bc < end; ++bc) {
      int64_t b = bc / channels, c = bc % channels;
      T* window = state + bc * K;
      for (int64_t k = 0; k + 1 < K; ++k) window[k] = window[k + 1];
      window[K - 1] = x[b * x_row + c];
      T acc = bias ? bias[c] : T(0);
      for (int64_t k = 0; k < K; ++k) acc += weight[c * K + k] * window[k];
      out[bc] = acc;
    }
  });
}
}  // namespace

Tensor causal_conv1d_step(Tensor& state, const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = "causal_conv1d_step";
  check_floating_inputs(op, {state, x, weight, bias});
  MG_CHECK(state.dim() == 3 && x.dim() == 2 && weight.dim() == 2, op, ": expected state (B, C, K), x (B, C) and weight (C, K), got ",
           state.shape(), ", ", x.shape(), " and ", weight.shape());
  const int64_t batch = state.size(0), channels = state.size(1), K = state.size(2);
  MG_CHECK(x.shape() == Shape({batch, channels}) && weight.shape() == Shape({channels, K}) &&
               (!bias.defined() || bias.shape() == Shape({channels})),
           op, ": shapes do not agree: state ", state.shape(), ", x ", x.shape(), ", weight ", weight.shape(),
           ", bias ", bias.defined() ? str(bias.shape()) : std::string("none"));
  MG_CHECK(state.is_contiguous(), op, ": the state must be contiguous (it is updated in place)");
  MG_CHECK(!(grad_mode_enabled() && state.requires_grad()), op, ": the state must not require grad");
  NoGradGuard no_grad;
  Tensor w = weight.contiguous(), b = bias.defined() ? bias.contiguous() : bias;
  Tensor xs = x.strides()[1] == 1 ? x : x.contiguous();
  Tensor out = empty({batch, channels}, {.dtype = x.dtype(), .device = x.device()});
  if (out.device().is_cuda()) {
    MG_CUDA_DISPATCH(cuda::causal_conv1d_step(out, state, xs, w, b));
    return out;
  }
  dispatch_floating(x.dtype(), op, [&]<class T>() {
    conv1d_step_cpu<T>(out.data<T>(), state.data<T>(), xs.data<T>(), xs.strides()[0], w.data<T>(),
                       b.defined() ? b.data<T>() : nullptr, batch, channels, K);
  });
  return out;
}

}  // namespace mg
