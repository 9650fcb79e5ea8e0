#pragma once
// One launch over many tensors (PyTorch's multi_tensor_apply idea): the optimizer and the global
// gradient norm visit every parameter, hundreds of small tensors, where a launch per tensor would
// cost more than the work. The host writes a table (a row per tensor) into device memory; the
// tensors are cut in chunks of kMultiTensorChunk elements, one block per chunk, and each block
// finds its row by binary search over the rows' first chunks.
#include <vector>

#include "cuda/launch.cuh"
#include "tensor/tensor.h"

namespace mg::cuda {

inline constexpr int64_t kMultiTensorChunk = int64_t{1} << 14;

struct MultiTensorRow {
  void* ptrs[4];        // the tensors of this row (unused ones null)
  int64_t numel;
  int64_t first_chunk;  // filled in by upload_rows
  double scalars[3];    // per-row constants
};

struct MultiTensorTable {
  Tensor storage;  // keeps the device copy alive until the launch is queued (stream order does the rest)
  const MultiTensorRow* rows = nullptr;
  int count = 0;
  int64_t chunks = 0;
};

// Fills in first_chunk and copies the rows to `device` (through the pinned staging ring: the host
// does not wait).
MultiTensorTable upload_rows(std::vector<MultiTensorRow>& rows, Device device);

// The row that owns `chunk`.
__device__ inline int find_row(const MultiTensorRow* rows, int count, int64_t chunk) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (rows[mid].first_chunk <= chunk) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

}  // namespace mg::cuda
