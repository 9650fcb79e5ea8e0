// GPU memory for tensor/Storage: the functions of tensor/device_backend.h.
// Plain cudaMalloc/cudaFree for now (a caching allocator comes later, behind the same functions).
// All work goes to the legacy default stream, so copies, memsets, kernels and cuBLAS calls run in
// the order they were issued, and a copy to the host waits for the kernels before it.
#include "cuda/check.h"
#include "tensor/device_backend.h"

namespace mg::cuda {

int device_count() {
  // Asked once: the answer does not change while the process runs. A machine without a driver or
  // GPU makes cudaGetDeviceCount fail (cudaErrorNoDevice, cudaErrorInsufficientDriver, ...);
  // that means "no GPU here", not an error, so the CPU-only paths keep working.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

void* device_malloc(size_t nbytes, int device) {
  DeviceGuard guard(device);
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, nbytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
    throw Error(str("cuda: out of memory on cuda:", device, " allocating ", nbytes, " bytes (", free_bytes,
                    " of ", total_bytes, " bytes free)"));
  }
  CUDA_CHECK(err);
  return ptr;
}

void device_free(void* ptr, int device) noexcept {
  if (!ptr) return;
  // Runs in destructors, also at process exit after the runtime may have shut down
  // (cudaErrorCudartUnloading): nothing useful can be done with an error here, so clear it.
  int previous = 0;
  bool ok = cudaGetDevice(&previous) == cudaSuccess;
  if (ok && previous != device) ok = cudaSetDevice(device) == cudaSuccess;
  if (ok) ok = cudaFree(ptr) == cudaSuccess;
  if (ok && previous != device) ok = cudaSetDevice(previous) == cudaSuccess;
  if (!ok) (void)cudaGetLastError();
}

void memcpy_host_to_device(void* dst, const void* src, size_t nbytes, int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void memcpy_device_to_host(void* dst, const void* src, size_t nbytes, int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

// `device` is the destination's; with unified addressing, cudaMemcpyDefault also copies between
// two GPUs.
void memcpy_device_to_device(void* dst, const void* src, size_t nbytes, int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDefault));
}

void memset_zero(void* ptr, size_t nbytes, int device) {
  DeviceGuard guard(device);
  CUDA_CHECK(cudaMemset(ptr, 0, nbytes));
}

}  // namespace mg::cuda
