// The host side of cuda/multi_tensor.cuh.
#include "cuda/multi_tensor.cuh"

#include "tensor/device_backend.h"
#include "tensor/factory.h"

namespace mg::cuda {

MultiTensorTable upload_rows(std::vector<MultiTensorRow>& rows, Device device) {
  MultiTensorTable table;
  for (MultiTensorRow& row : rows) {
    row.first_chunk = table.chunks;
    table.chunks += (row.numel + kMultiTensorChunk - 1) / kMultiTensorChunk;
  }
  table.count = static_cast<int>(rows.size());
  if (rows.empty()) return table;
  const int64_t bytes = static_cast<int64_t>(rows.size() * sizeof(MultiTensorRow));
  table.storage = empty({(bytes + 7) / 8}, {.dtype = DType::Int64, .device = device});
  memcpy_host_to_device(table.storage.raw_data(), rows.data(), static_cast<size_t>(bytes), device.index);
  table.rows = static_cast<const MultiTensorRow*>(table.storage.raw_data());
  return table;
}

}  // namespace mg::cuda
