#pragma once
// What every kernel launch in cuda/ uses: the device's stream, grid sizes, and the record in
// which a kernel reports bad data (an index out of range) for the host to raise.
//
//   DeviceGuard guard(out.device().index);      // the tensors' GPU becomes current
//   my_kernel<<<grid_for(n, 256), 256, 0, current_stream()>>>(...);
//   CUDA_CHECK_LAUNCH();
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/check.h"

namespace mg::cuda {

// The stream of the current device. Every kernel, copy and cuBLAS call of a device goes to it, so
// they run in the order they were issued.
cudaStream_t current_stream();

// Blocks for n items, `threads` per block, capped so that a grid-stride loop covers the rest.
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = int64_t{1} << 20) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + threads - 1) / threads, 1, max_blocks));
}

// A kernel that finds bad data cannot throw: it records the first problem here (device memory,
// one record per GPU) and carries on with a harmless value; the host raises mg::Error with the
// record at its next wait for the GPU (cuda/runtime.cu).
struct DeviceErrorRecord {
  int code;  // DeviceErrorCode; 0 when nothing was found
  int pad;
  long long value, position, limit;
};

enum DeviceErrorCode : int {
  kNoDeviceError = 0,
  kEmbeddingIndexOutOfRange = 1,   // value: the index, position: where, limit: num_embeddings
  kIndexSelectOutOfRange = 2,      // value: the index, position: where, limit: the dim's size
  kCrossEntropyTargetOutOfRange = 3,  // value: the target, position: the row, limit: classes
};

// The current device's record.
DeviceErrorRecord* device_error_record();

__device__ inline void report_device_error(DeviceErrorRecord* record, int code, long long value, long long position,
                                           long long limit) {
  if (atomicCAS(&record->code, 0, code) == 0) {  // the first report wins; later ones are dropped
    record->value = value;
    record->position = position;
    record->limit = limit;
  }
}

}  // namespace mg::cuda
