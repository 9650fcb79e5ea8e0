// Row-major strided-batched GEMM through cuBLAS (the contract is in cuda/kernels.h).
//
// cuBLAS is column-major. A row-major (m, n) matrix with row stride ld is, byte for byte, a
// column-major (n, m) matrix with leading dimension ld: its transpose. So the row-major product
//   C = op(A) op(B)        is computed as the column-major product        C^T = op(B)^T op(A)^T,
// i.e. cuBLAS gets B as its first operand and A as its second, with the same transpose flags,
// sizes (n, m, k), and C's leading dimension n. No data moves.
//
// float32 runs in plain FP32 arithmetic (CUBLAS_COMPUTE_32F), so results match the CPU to float32
// rounding, unless TF32 is allowed (cuda/runtime.h: set_allow_tf32); float64 in FP64.
#include <algorithm>
#include <climits>
#include <mutex>
#include <vector>

#include "cuda/check.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "tensor/device_backend.h"

namespace mg::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// One handle per GPU, created on first use, bound to the device's stream, with a workspace from
// the caching allocator (set explicitly: cuBLAS would otherwise allocate one itself, which a CUDA
// graph capture does not allow). Handles are never destroyed: destroying them from a static
// destructor can run after the CUDA runtime has shut down. cuBLAS allows one handle to be used
// from several host threads as long as its settings do not change, and they are set once here;
// the math mode (TF32 or not) is chosen per call through the compute type instead.
cublasHandle_t handle_for(int device) {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  if (handles.empty()) handles.assign(std::max(device_count(), 1), nullptr);
  MG_ASSERT(device >= 0 && device < static_cast<int>(handles.size()), "gemm: no GPU ", device);
  if (!handles[device]) {
    DeviceGuard guard(device);
    cublasHandle_t handle = nullptr;
    CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetStream(handle, current_stream()));
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasSetWorkspace(handle, device_malloc(kWorkspaceBytes, device), kWorkspaceBytes));
    handles[device] = handle;
  }
  return handles[device];
}

// cuBLAS's leading dimension must be at least the row length even where it is never used
// (a single-row matrix may carry any stride).
int64_t leading_dim(int64_t rows, int64_t cols, int64_t row_stride) {
  if (rows <= 1) return std::max<int64_t>({row_stride, cols, 1});
  MG_ASSERT(row_stride >= std::max<int64_t>(cols, 1), "gemm: row stride ", row_stride, " < ", cols, " columns");
  return row_stride;
}

int as_int(int64_t v, const char* what) {
  MG_CHECK(v <= INT_MAX, "matmul: on cuda, ", what, " ", v, " exceeds cuBLAS's 32-bit limit");
  return static_cast<int>(v);
}

}  // namespace

void prepare_cublas(int device) { handle_for(device); }

void gemm(DType dtype, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const void* a, int64_t lda,
          int64_t stride_a, const void* b, int64_t ldb, int64_t stride_b, void* c, int64_t stride_c, int64_t batch,
          int device) {
  MG_ASSERT(dtype == DType::Float32 || dtype == DType::Float64, "gemm: dtype ", dtype);
  if (m == 0 || n == 0 || batch == 0) return;
  DeviceGuard guard(device);
  int64_t element = dtype_size(dtype);
  if (k == 0) {  // an empty sum: C = 0
    for (int64_t i = 0; i < batch; ++i)
      CUDA_CHECK(cudaMemsetAsync(static_cast<char*>(c) + i * stride_c * element, 0, m * n * element, current_stream()));
    return;
  }
  // Row-major stored shapes: A is (m, k), or (k, m) when trans_a; B is (k, n), or (n, k).
  int64_t a_rows = trans_a ? k : m, a_cols = trans_a ? m : k;
  int64_t b_rows = trans_b ? n : k, b_cols = trans_b ? k : n;
  lda = leading_dim(a_rows, a_cols, lda);
  ldb = leading_dim(b_rows, b_cols, ldb);
  cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cudaDataType_t type = dtype == DType::Float32 ? CUDA_R_32F : CUDA_R_64F;
  cublasComputeType_t compute = dtype == DType::Float64 ? CUBLAS_COMPUTE_64F
                                : allow_tf32()               ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                             : CUBLAS_COMPUTE_32F;
  float one_f = 1, zero_f = 0;
  double one_d = 1, zero_d = 0;
  const void* one = dtype == DType::Float32 ? static_cast<const void*>(&one_f) : &one_d;
  const void* zero = dtype == DType::Float32 ? static_cast<const void*>(&zero_f) : &zero_d;
  // Column-major: C^T (n, m) = op(B)^T (n, k) @ op(A)^T (k, m).
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(handle_for(device), op_b, op_a, as_int(n, "n"), as_int(m, "m"),
                                          as_int(k, "k"), one, b, type, as_int(ldb, "ldb"), stride_b, a, type,
                                          as_int(lda, "lda"), stride_a, zero, c, type, as_int(n, "ldc"), stride_c,
                                          as_int(batch, "batch"), compute, CUBLAS_GEMM_DEFAULT));
}

}  // namespace mg::cuda
