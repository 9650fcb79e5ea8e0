// Eigen GEMM over maps of strided matrices (see matmul.h). Eigen packs its operands into
// cache-sized panels itself, whatever their storage order, so mapping a transposed view as a
// column-major matrix costs nothing: no copy is ever made here.
#include "ops/cpu/matmul.h"

// GCC 12 reports false "may be used uninitialized" warnings inside its own AVX-512 intrinsic
// headers when Eigen's kernels are instantiated with -march=native; they are not ours to fix.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <Eigen/Core>
#include <algorithm>
#include <vector>

#include "ops/cpu/parallel.h"
#include "tensor/error.h"

namespace mg::cpu {

namespace {

template <class T, int Order>
using ConstMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>, Eigen::Unaligned,
                            Eigen::OuterStride<>>;
template <class T>
using OutMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, Eigen::Unaligned,
                          Eigen::OuterStride<>>;

// Calls fn with an Eigen map of m: row-major, or column-major for a transposed view.
template <class T, class Fn>
void with_map(const StridedMatrix<T>& m, Fn&& fn) {
  MatrixLayout layout = matrix_layout(m.rows, m.cols, m.row_stride, m.col_stride);
  MG_ASSERT(layout.mappable, "matrix strides [", m.row_stride, ", ", m.col_stride, "] cannot be mapped");
  Eigen::OuterStride<> outer(layout.leading_stride);
  if (!layout.transposed) fn(ConstMap<T, Eigen::RowMajor>(m.data, m.rows, m.cols, outer));
  else fn(ConstMap<T, Eigen::ColMajor>(m.data, m.rows, m.cols, outer));
}

// Below this many multiply-adds per product (128^3), a batch is spread across threads, each
// product serial: Eigen would not thread such small products well anyway. A task holds at least
// kMinTaskWork multiply-adds, so tiny batches stay on one thread.
constexpr double kSmallProduct = 128.0 * 128.0 * 128.0;
constexpr double kMinTaskWork = 32768.0;

}  // namespace

MatrixLayout matrix_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  // Row-major: unit column stride, rows far enough apart not to overlap; column-major mirrors it.
  if ((cols <= 1 || col_stride == 1) && (rows <= 1 || row_stride >= std::max<int64_t>(cols, 1)))
    return {true, false, rows <= 1 ? std::max<int64_t>(cols, 1) : row_stride};
  if ((rows <= 1 || row_stride == 1) && (cols <= 1 || col_stride >= std::max<int64_t>(rows, 1)))
    return {true, true, cols <= 1 ? std::max<int64_t>(rows, 1) : col_stride};
  return {};
}

template <class T>
void gemm_cpu(T* c, const StridedMatrix<T>& a, const StridedMatrix<T>& b, bool accumulate, int64_t c_row_stride) {
  MG_ASSERT(a.cols == b.rows, "gemm_cpu: inner sizes ", a.cols, " and ", b.rows);
  int64_t m = a.rows, n = b.cols, k = a.cols;
  if (m == 0 || n == 0) return;
  MG_ASSERT(c_row_stride == 0 || c_row_stride >= n, "gemm_cpu: output row stride ", c_row_stride, " < ", n, " columns");
  OutMap<T> out(c, m, n, Eigen::OuterStride<>(c_row_stride > 0 ? c_row_stride : n));
  if (k == 0) {  // an empty sum: zeros
    if (!accumulate) out.setZero();
    return;
  }
  with_map(a, [&](const auto& a_map) {
    with_map(b, [&](const auto& b_map) {
      if (accumulate) out.noalias() += a_map * b_map;
      else out.noalias() = a_map * b_map;
    });
  });
}

template <class T>
void batched_gemm_cpu(T* c, const StridedMatrix<T>& a, const int64_t* a_offsets, const StridedMatrix<T>& b,
                      const int64_t* b_offsets, int64_t batch) {
  int64_t m = a.rows, n = b.cols;
  auto product = [&](int64_t i) {
    StridedMatrix<T> a_i = a, b_i = b;
    a_i.data += a_offsets[i];
    b_i.data += b_offsets[i];
    gemm_cpu(c + i * m * n, a_i, b_i);
  };
  double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(a.cols);
  if (batch > 1 && work < kSmallProduct) {
    // Inside this parallel region Eigen sees omp_get_num_threads() > 1 and stays serial.
    int64_t grain = static_cast<int64_t>(std::max(1.0, kMinTaskWork / std::max(work, 1.0)));
    parallel_for(0, batch, grain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) product(i);
    });
  } else {
    for (int64_t i = 0; i < batch; ++i) product(i);
  }
}

template <class T>
void broadcast_rows_cpu(T* out, const T* bias, int64_t rows, int64_t cols) {
  int64_t grain = std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(cols, 1));
  parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) std::copy(bias, bias + cols, out + r * cols);
  });
}

template <class T>
void column_sums_cpu(T* dbias, const T* dout, int64_t rows, int64_t cols) {
  constexpr int64_t kBlock = 64;  // columns per task; float32 sums accumulate in double
  parallel_for(0, cols, kBlock, [&](int64_t begin, int64_t end) {
    std::vector<double> acc(end - begin, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      const T* row = dout + r * cols + begin;
      for (int64_t j = 0; j < end - begin; ++j) acc[j] += row[j];
    }
    for (int64_t j = begin; j < end; ++j) dbias[j] = static_cast<T>(acc[j - begin]);
  });
}

#define MG_INSTANTIATE(T)                                                                                  \
  template void gemm_cpu<T>(T*, const StridedMatrix<T>&, const StridedMatrix<T>&, bool, int64_t);        \
  template void batched_gemm_cpu<T>(T*, const StridedMatrix<T>&, const int64_t*, const StridedMatrix<T>&, \
                                    const int64_t*, int64_t);                                             \
  template void broadcast_rows_cpu<T>(T*, const T*, int64_t, int64_t);                                    \
  template void column_sums_cpu<T>(T*, const T*, int64_t, int64_t);
MG_INSTANTIATE(float)
MG_INSTANTIATE(double)
#undef MG_INSTANTIATE

}  // namespace mg::cpu
