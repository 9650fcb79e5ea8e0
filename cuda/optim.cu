// The optimizer's kernels on the GPU, over every parameter in one launch (cuda/multi_tensor.cuh):
// AdamW, and the in-place scaling of gradient clipping.
#include "cuda/kernels.h"
#include "cuda/multi_tensor.cuh"

namespace mg::cuda {

namespace {

constexpr int kThreads = 256;

// The update of the CPU kernel (nn/optim/adamw.cpp), in the same operation order, so both devices
// follow PyTorch's AdamW. Row pointers: param, grad, exp_avg, exp_avg_sq; scalars: the decay
// factor 1 - lr wd, the step size lr / bias_correction1, sqrt(bias_correction2).
template <class T>
__global__ void __launch_bounds__(kThreads)
    adamw_kernel(const MultiTensorRow* rows, int count, T beta1, T beta2, T eps) {
  const int64_t chunk = blockIdx.x;
  const MultiTensorRow& row = rows[find_row(rows, count, chunk)];
  T* p = static_cast<T*>(row.ptrs[0]);
  const T* g = static_cast<const T*>(row.ptrs[1]);
  T* m = static_cast<T*>(row.ptrs[2]);
  T* v = static_cast<T*>(row.ptrs[3]);
  const T decay = static_cast<T>(row.scalars[0]), neg_step = static_cast<T>(-row.scalars[1]);
  const T bc2 = static_cast<T>(row.scalars[2]), one_minus_b1 = T(1) - beta1, one_minus_b2 = T(1) - beta2;
  const int64_t begin = (chunk - row.first_chunk) * kMultiTensorChunk;
  const int64_t end = min(row.numel, begin + kMultiTensorChunk);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) {
    const T gi = g[i];
    const T pi = p[i] * decay;
    const T mi = m[i] * beta1 + one_minus_b1 * gi;
    const T vi = v[i] * beta2 + one_minus_b2 * gi * gi;
    const T denom = sqrt(vi) / bc2 + eps;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + neg_step * (mi / denom);
  }
}

// The CPU's rule (nn/clip_grad.cpp), applied where the norm is.
template <class T>
__global__ void __launch_bounds__(kThreads)
    clip_kernel(const MultiTensorRow* rows, int count, const double* total_norm, double max_norm) {
  const double coef = max_norm / (*total_norm + 1e-6);
  if (!(coef < 1.0 || isnan(coef))) return;
  const int64_t chunk = blockIdx.x;
  const MultiTensorRow& row = rows[find_row(rows, count, chunk)];
  T* x = static_cast<T*>(row.ptrs[0]);
  const T f = static_cast<T>(coef);
  const int64_t begin = (chunk - row.first_chunk) * kMultiTensorChunk;
  const int64_t end = min(row.numel, begin + kMultiTensorChunk);
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) x[i] = x[i] * f;
}

}  // namespace

void adamw_step(DType dtype, const std::vector<AdamWTensor>& tensors, double beta1, double beta2, double eps,
                int device) {
  DeviceGuard guard(device);
  std::vector<MultiTensorRow> rows;
  for (const AdamWTensor& t : tensors)
    rows.push_back({{t.param, const_cast<void*>(t.grad), t.exp_avg, t.exp_avg_sq},
                    t.numel,
                    0,
                    {t.decay_factor, t.step_size, t.bias_correction2_sqrt}});
  MultiTensorTable table = upload_rows(rows, Device::cuda(device));
  if (table.chunks == 0) return;
  dispatch_floating(dtype, "AdamW", [&]<class T>() {
    adamw_kernel<T><<<static_cast<unsigned>(table.chunks), kThreads, 0, current_stream()>>>(
        table.rows, table.count, static_cast<T>(beta1), static_cast<T>(beta2), static_cast<T>(eps));
  });
  CUDA_CHECK_LAUNCH();
}

void clip_inplace(const TensorList& tensors, const Tensor& total_norm, double max_norm) {
  if (tensors.empty()) return;
  MG_ASSERT(total_norm.dtype() == DType::Float64 && total_norm.numel() == 1, "clip_inplace: the norm must be one float64");
  DeviceGuard guard(total_norm.device().index);
  std::vector<MultiTensorRow> rows;
  for (const Tensor& t : tensors) {
    MG_ASSERT(t.is_contiguous() && t.dtype() == tensors[0].dtype(), "clip_inplace: contiguous tensors of one dtype");
    rows.push_back({{t.raw_data(), nullptr, nullptr, nullptr}, t.numel(), 0, {0, 0, 0}});
  }
  MultiTensorTable table = upload_rows(rows, total_norm.device());
  if (table.chunks == 0) return;
  dispatch_floating(tensors[0].dtype(), "clip_grad_norm_", [&]<class T>() {
    clip_kernel<T><<<static_cast<unsigned>(table.chunks), kThreads, 0, current_stream()>>>(
        table.rows, table.count, total_norm.data<double>(), max_norm);
  });
  CUDA_CHECK_LAUNCH();
}

}  // namespace mg::cuda
