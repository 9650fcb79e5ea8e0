#pragma once
// The interface through which tensor/ reaches GPU memory without depending on cuda/.
// cuda/runtime.cu implements these functions when mambagrad is built with MG_CUDA; in a CPU-only
// build they are never called (storage.cpp throws a clear error first).
#include <cstddef>

#include "tensor/tensor.h"

namespace mg::cuda {

int device_count();  // 0 when there is no usable GPU or driver
// From the device's caching allocator (cuda/caching_allocator.h); throws OutOfMemoryError.
void* device_malloc(size_t nbytes, int device);
void device_free(void* ptr, int device) noexcept;
// Copies and memsets are queued on the device's stream (cuda/runtime.cu). A copy to the host
// waits for it (the one place the host waits) and reports errors kernels found meanwhile.
void memcpy_host_to_device(void* dst, const void* src, size_t nbytes, int device);
void memcpy_device_to_host(void* dst, const void* src, size_t nbytes, int device);
void memcpy_device_to_device(void* dst, int dst_device, const void* src, int src_device, size_t nbytes);
void memset_zero(void* ptr, size_t nbytes, int device);
// Every element of `out` (any dtype, any strides) set to value, by a kernel (cuda/elementwise.cu).
void fill(const Tensor& out, double value);

}  // namespace mg::cuda
