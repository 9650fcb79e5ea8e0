#pragma once
// The interface through which tensor/ reaches GPU memory without depending on cuda/.
// cuda/runtime.cu implements these functions when mambagrad is built with MG_CUDA; in a CPU-only
// build they are never called (storage.cpp throws a clear error first).
#include <cstddef>

namespace mg::cuda {

int device_count();  // 0 when there is no usable GPU or driver
void* device_malloc(size_t nbytes, int device);
void device_free(void* ptr, int device) noexcept;
void memcpy_host_to_device(void* dst, const void* src, size_t nbytes, int device);
void memcpy_device_to_host(void* dst, const void* src, size_t nbytes, int device);
void memcpy_device_to_device(void* dst, const void* src, size_t nbytes, int device);
void memset_zero(void* ptr, size_t nbytes, int device);

}  // namespace mg::cuda
