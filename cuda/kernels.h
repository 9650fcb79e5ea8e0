#pragma once
// The CUDA kernels the ops dispatch to, one family per .cu file. Plain C++ declarations (no CUDA
// types), so ops/ compiles without nvcc; the ops check shapes, dtypes and devices first, so these
// functions assume valid arguments. Each selects the tensors' GPU and queues its work on that GPU's
// stream (cuda/runtime.h): none of them waits for the GPU.
//
// In a build without CUDA no CUDA tensor can exist (Storage refuses to allocate one), and
// MG_CUDA_DISPATCH turns the call into that same clear error.
#include <cstdint>

#include "ops/op_kinds.h"
#include "ops/scan_kernel_args.h"
#include "tensor/device_backend.h"
#include "tensor/tensor.h"

#ifdef MG_WITH_CUDA
#define MG_CUDA_DISPATCH(call) call
#else
#define MG_CUDA_DISPATCH(call) \
  throw ::mg::Error("cuda: this op needs CUDA but mambagrad was built without it (configure with -DMG_CUDA=ON)")
#endif

namespace mg::cuda {

// ---- elementwise.cu: strided, broadcasting elementwise ops
// out (contiguous, the broadcast shape) = a op b; a and b broadcast to out and may be strided.
void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
// dst = src elementwise: src broadcasts to dst's shape; both may be strided; dtypes may differ.
void copy(const Tensor& dst, const Tensor& src);
// fill(out, value) is declared in tensor/device_backend.h (the factories use it).
// dst += alpha * src (same shape; dst contiguous), and dst *= value.
void add_inplace(const Tensor& dst, const Tensor& src, double alpha);
void mul_inplace(const Tensor& dst, double value);

// ---- unary.cu: the unary ops' math (the CPU's is in ops/unary_math.cpp), where, dropout
// out = op(x): out contiguous, x of out's shape with any strides.
void unary_forward(UnaryOp op, UnaryParams params, const Tensor& out, const Tensor& x);
// dx = op'(dout, x, y): dx contiguous; dout, x (the input) and y (the output) of dx's shape, any
// strides; x or y is undefined when the op's derivative does not read it.
void unary_backward(UnaryOp op, UnaryParams params, const Tensor& dx, const Tensor& dout, const Tensor& x,
                    const Tensor& y);
// out (contiguous) = condition != 0 ? a : b, all broadcast to out's shape; condition of any dtype.
void where(const Tensor& out, const Tensor& condition, const Tensor& a, const Tensor& b);
// mask (contiguous): 1 / (1 - p) where dropout_keeps(seed, i, p) (ops/dropout_hash.h), else 0.
void dropout_mask(const Tensor& mask, double p, uint64_t seed);

// ---- reduce.cu: reductions, in a fixed order (the same bits every run)
// out (contiguous; same number of dims as in, each size equal or 1) = sum of `in` over the dims
// where out has size 1. The backward of broadcasting.
void sum_to(const Tensor& out, const Tensor& in);
// x (outer, size, inner) contiguous, size >= 1 -> values, indices (outer, inner): the first
// maximum along `size` (NaN counts as the maximum, as on the CPU).
void max_forward(const Tensor& values, const Tensor& indices, const Tensor& x, int64_t outer, int64_t size,
                 int64_t inner);
// dx (outer, size, inner), zero-filled: dx[o, indices[o, j], j] = dout[o, j].
void max_backward(const Tensor& dx, const Tensor& dout, const Tensor& indices, int64_t outer, int64_t size,
                  int64_t inner);
// out (0-d float64) = sum over the tensors of sum(t^2), accumulated in double; tensors contiguous.
void sum_of_squares(const Tensor& out, const TensorList& tensors);

// ---- softmax.cu (the CPU twins are in ops/cpu/softmax.h)
// y = softmax(x) or log_softmax(x) along C; x, y (outer, C, inner) contiguous.
void softmax_forward(const Tensor& y, const Tensor& x, int64_t outer, int64_t C, int64_t inner, bool log);
void softmax_backward(const Tensor& dx, const Tensor& dy, const Tensor& y, int64_t outer, int64_t C, int64_t inner,
                      bool log);
// logits (N, C) contiguous, targets (N) int64 -> loss (0-d, logits' dtype) = mean over the rows
// whose target is not ignore_index of lse[n] - logits[n, t_n]; lse (N) float64 and count (0-d
// float64, the rows that count) are saved for the backward. A target outside [0, C) is reported
// at the next wait for the GPU (cuda/runtime.h) and counts as ignored.
void cross_entropy_forward(const Tensor& loss, const Tensor& lse, const Tensor& count, const Tensor& logits,
                           const Tensor& targets, int64_t ignore_index);
// dlogits[n, c] = (softmax(logits[n])_c - [c == t_n]) * dloss / count; zero rows where ignored.
// dloss: 0-d (the loss's gradient, on the GPU).
void cross_entropy_backward(const Tensor& dlogits, const Tensor& logits, const Tensor& targets, const Tensor& lse,
                            const Tensor& count, const Tensor& dloss, int64_t ignore_index);

// ---- index.cu: gathers and their deterministic scatter-adds
// x (outer, rows, inner), index (n) int64 -> out (outer, n, inner); contiguous. An index outside
// [0, rows) is reported at the next wait for the GPU as embedding's or index_select's (by
// `embedding`), and gives a zero row meanwhile.
void index_select_forward(const Tensor& out, const Tensor& x, const Tensor& index, int64_t outer, int64_t rows,
                          int64_t inner, bool embedding);
// dx (outer, rows, inner) = the scatter-add of dout (outer, n, inner) into the rows index names.
// Each row's contributions are added in index order (sorted by a stable radix sort first), so the
// result has the same bits on every run: no floating-point atomics.
void index_select_backward(const Tensor& dx, const Tensor& dout, const Tensor& index, int64_t outer, int64_t rows,
                           int64_t inner);

// ---- conv1d.cu: the causal depthwise conv1d (ops/conv1d.h), contiguous tensors
// out, x (B, C, L); weight (C, K); bias (C) or undefined.
void causal_conv1d_forward(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias);
// Any of dx (B, C, L), dweight (C, K), dbias (C) may be undefined (not needed).
void causal_conv1d_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                            const Tensor& x, const Tensor& weight);
// state (B, C, K) contiguous, shifted in place; x (B, C) with unit channel stride; out (B, C).
void causal_conv1d_step(const Tensor& out, const Tensor& state, const Tensor& x, const Tensor& weight,
                        const Tensor& bias);

// ---- rms_norm.cu: x, out (rows, dim) contiguous; weight (dim) or undefined; rstd (rows).
void rms_norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& x, const Tensor& weight, double eps);
// dweight (dim) may be undefined (not needed).
void rms_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dout, const Tensor& x,
                       const Tensor& weight, const Tensor& rstd);

// ---- layer_norm.cu: x, out (rows, dim) contiguous; weight, bias (dim) or undefined; mean, rstd
// (rows) saved for the backward. dweight, dbias (dim) may be undefined (not needed).
void layer_norm_forward(const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& weight, const Tensor& bias, double eps);
void layer_norm_backward(const Tensor& dx, const Tensor& dweight, const Tensor& dbias, const Tensor& dout,
                         const Tensor& x, const Tensor& weight, const Tensor& mean, const Tensor& rstd);

// ---- discretize.cu: the zero-order-hold discretization (ops/discretize.h), elementwise over the
// broadcast shape: A_bar = exp(delta A); B_bar = delta exprel(delta A) B (exact) or delta B.
// Outputs contiguous; inputs broadcast to them with any strides.
void discretize_a_forward(const Tensor& A_bar, const Tensor& delta, const Tensor& A);
void discretize_b_forward(const Tensor& B_bar, const Tensor& delta, const Tensor& A, const Tensor& B, bool exact);
// Per element of the output's broadcast shape (summed to each input's shape by the op):
//   from dA_bar: ddelta = dA_bar A A_bar, dA = dA_bar delta A_bar
//   from dB_bar: ddelta, dA, dB of B_bar (dA undefined for the simplified hold)
void discretize_a_backward(const Tensor& ddelta, const Tensor& dA, const Tensor& dA_bar, const Tensor& delta,
                           const Tensor& A);
void discretize_b_backward(const Tensor& ddelta, const Tensor& dA, const Tensor& dB, const Tensor& dB_bar,
                           const Tensor& delta, const Tensor& A, const Tensor& B, bool exact);

// ---- selective_scan.cu: the selective scan (ops/selective_scan.h) on pointers to one GPU's
// memory (ops/selective_scan.cpp passes contiguous tensors of `device`).
// Values in the forward's checkpoint buffer (what the backward reads): the state entering every
// chunk of the sequence, and <C_t, h_t>.
int64_t selective_scan_checkpoint_numel(const ScanSizes& size);
template <class T>
void selective_scan_forward(const ScanInputs<T>& in, T* y, T* last_state, T* checkpoints, int device);
// dy, dlast may be nullptr (zero). Writes every gradient in `grads` that is not nullptr; uses
// `workspace` (selective_scan_workspace_numel values of the dtype) for the deterministic reductions.
int64_t selective_scan_workspace_numel(const ScanSizes& size, DType dtype);
template <class T>
void selective_scan_backward(const ScanInputs<T>& in, const T* checkpoints, const T* dy, const T* dlast,
                             const ScanGrads<T>& grads, T* workspace, int device);
// One recurrent step (L = 1): in.h0 is the state, updated in place (last_state == in.h0).
template <class T>
void selective_scan_step(const ScanInputs<T>& in, T* y, T* state, int device);

// ---- optim.cu: AdamW over many tensors in one launch (the CPU twin is nn/optim/adamw.cpp).
struct AdamWTensor {
  void* param;
  const void* grad;
  void* exp_avg;
  void* exp_avg_sq;
  int64_t numel;
  double decay_factor;  // 1 - lr * weight_decay
  double step_size;     // lr / bias_correction1
  double bias_correction2_sqrt;
};
void adamw_step(DType dtype, const std::vector<AdamWTensor>& tensors, double beta1, double beta2, double eps,
                int device);
// Gradient clipping's scaling, decided on the GPU (no wait for the norm): with
// coef = max_norm / (total_norm + 1e-6), every tensor *= coef when coef < 1 or coef is NaN.
// total_norm: 0-d float64 on the GPU; tensors contiguous, of one dtype.
void clip_inplace(const TensorList& tensors, const Tensor& total_norm, double max_norm);

// ---- gemm.cu: row-major strided-batched GEMM through cuBLAS, float32 or float64:
//   C[i] = op(A[i]) @ op(B[i])  for i < batch, C (m, n) contiguous per batch
// where op transposes when trans_* is true; A[i] = a + i * stride_a etc. (element strides;
// a stride of 0 broadcasts one matrix over the batch). lda/ldb are the row strides of A and B.
void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
          int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t stride_c, int64_t batch,
          int device);

}  // namespace mg::cuda
