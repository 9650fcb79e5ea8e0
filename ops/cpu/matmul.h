#pragma once
// CPU matrix products: Eigen GEMM on maps of the operands' own memory.
//
// A StridedMatrix describes a matrix in place: element (i, j) is data[i * row_stride + j * col_stride].
// Eigen maps it without a copy when it is row-major (col_stride 1) or column-major (row_stride 1),
// which covers contiguous matrices and `.transpose(-1, -2)` views of them; the caller copies
// anything else to contiguous first (matrix_layout says which).
// Outputs are always contiguous row-major (row stride = columns). The functions are instantiated
// for float and double in matmul.cpp.
#include <cstdint>

namespace mg::cpu {

template <class T>
struct StridedMatrix {
  const T* data = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t row_stride = 0, col_stride = 0;  // in elements
};

// How a (rows, cols) matrix with these strides can be read in place (by Eigen or cuBLAS), if at all:
//   row-major:                 element (i, j) at i * leading_stride + j
//   transposed (column-major): element (i, j) at i + j * leading_stride
// Size-1 dims accept any stride; leading_stride is then the smallest valid one.
struct MatrixLayout {
  bool mappable = false;
  bool transposed = false;
  int64_t leading_stride = 0;
};
MatrixLayout matrix_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride);

// c (m, n) = a (m, k) @ b (k, n), or c += a @ b when accumulate. c is row-major with rows
// c_row_stride apart (0: n, contiguous).
// Eigen threads one big product itself (its OpenMP pool); inside a parallel region it runs serially.
template <class T>
void gemm_cpu(T* c, const StridedMatrix<T>& a, const StridedMatrix<T>& b, bool accumulate = false,
              int64_t c_row_stride = 0);

// c[i] (m, n) = a[i] @ b[i] for i < batch, where a[i] = a shifted by a_offsets[i] elements (same for b)
// and c[i] = c + i * m * n. Small products run in parallel across the batch (each one serial);
// big ones one after another, each threaded by Eigen, so threads never nest.
template <class T>
void batched_gemm_cpu(T* c, const StridedMatrix<T>& a, const int64_t* a_offsets, const StridedMatrix<T>& b,
                      const int64_t* b_offsets, int64_t batch);

// out (rows, cols) row-major: every row set to bias (cols). Linear's bias before its GEMM adds to it.
template <class T>
void broadcast_rows_cpu(T* out, const T* bias, int64_t rows, int64_t cols);

// dbias (cols) = sum over rows of dout (rows, cols), row-major. Linear's bias gradient.
// Columns are split in fixed blocks across threads, each summing rows in order: deterministic.
template <class T>
void column_sums_cpu(T* dbias, const T* dout, int64_t rows, int64_t cols);

}  // namespace mg::cpu
