#pragma once
// The CUDA kernels the ops dispatch to. Plain C++ declarations (no CUDA types), so ops/ can call
// them; implemented in cuda/*.cu. In a build without CUDA no CUDA tensor can exist (Storage
// refuses to allocate one), and MG_CUDA_DISPATCH turns the call into that same clear error.
#include "tensor/tensor.h"

#ifdef MG_WITH_CUDA
#define MG_CUDA_DISPATCH(call) call
#else
#define MG_CUDA_DISPATCH(call) \
  throw ::mg::Error("cuda: this op needs CUDA but mambagrad was built without it (configure with -DMG_CUDA=ON)")
#endif

namespace mg::cuda {

enum class BinaryOp : int { Add = 0, Sub = 1, Mul = 2, Div = 3 };

// out (contiguous, the broadcast shape) = a op b; a and b broadcast to out and may be strided.
void binary(BinaryOp op, const Tensor& out, const Tensor& a, const Tensor& b);
// dst = src elementwise: src broadcasts to dst's shape; both may be strided; dtypes may differ.
void copy(const Tensor& dst, const Tensor& src);
// Every element of `out` (contiguous) set to value.
void fill(const Tensor& out, double value);
// dst += alpha * src (same shape; dst contiguous), and dst *= value.
void add_inplace(const Tensor& dst, const Tensor& src, double alpha);
void mul_inplace(const Tensor& dst, double value);
// out (contiguous; same number of dims as in, each size equal or 1) = sum of `in` over the dims
// where out has size 1. The backward of broadcasting.
void sum_to(const Tensor& out, const Tensor& in);

// Row-major strided-batched GEMM through cuBLAS, float32 or float64:
//   C[i] = op(A[i]) @ op(B[i])  for i < batch, C (m, n) contiguous per batch
// where op transposes when trans_* is true; A[i] = a + i * stride_a etc. (element strides;
// a stride of 0 broadcasts one matrix over the batch). lda/ldb are the row strides of A and B.
void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
          int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t stride_c, int64_t batch,
          int device);

}  // namespace mg::cuda
