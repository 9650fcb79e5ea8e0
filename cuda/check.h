#pragma once
// Checked CUDA and cuBLAS calls, and a scope guard that selects a GPU. Every CUDA call in cuda/
// goes through one of these: a failure throws mg::Error with the call, file:line and CUDA's own
// message, never aborts.
//
//   CUDA_CHECK(cudaMemcpy(dst, src, n, cudaMemcpyDefault));
//   my_kernel<<<grid, block>>>(...);
//   CUDA_CHECK_LAUNCH();            // launch errors (bad configuration, no kernel image for this GPU)
//   CUBLAS_CHECK(cublasSgemm(...));
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "tensor/error.h"

namespace mg::cuda {

// Throws for a failed CUDA call. Clears CUDA's "last error" first, so a later CUDA_CHECK_LAUNCH
// does not report this same, already-reported error again.
[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  (void)cudaGetLastError();
  throw Error(str("cuda: ", call, " failed at ", file, ":", line, ": ", cudaGetErrorName(err), ": ",
                  cudaGetErrorString(err)));
}

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw Error(str("cublas: ", call, " failed at ", file, ":", line, ": ", cublasGetStatusString(status)));
}

// Makes `device` the current GPU for the enclosing scope and restores the previous one after.
// Allocations, copies, launches and cuBLAS calls all act on the current GPU, so each entry point
// of cuda/ that touches a tensor opens one of these with the tensor's device index.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    cudaError_t err = cudaGetDevice(&previous_);
    if (err != cudaSuccess) throw_cuda_error(err, "cudaGetDevice", __FILE__, __LINE__);
    if (previous_ == device) return;
    err = cudaSetDevice(device);
    if (err != cudaSuccess) throw_cuda_error(err, "cudaSetDevice", __FILE__, __LINE__);
    switched_ = true;
  }
  ~DeviceGuard() {
    if (switched_ && cudaSetDevice(previous_) != cudaSuccess) (void)cudaGetLastError();  // never throw here
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

}  // namespace mg::cuda

#define CUDA_CHECK(call)                                                                     \
  do {                                                                                       \
    cudaError_t mg_cuda_err_ = (call);                                                       \
    if (mg_cuda_err_ != cudaSuccess) ::mg::cuda::throw_cuda_error(mg_cuda_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports a launch that did not start (errors inside the kernel surface at
// the next synchronizing call, e.g. the copy back to the host).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                            \
  do {                                                                                                \
    cublasStatus_t mg_cublas_status_ = (call);                                                        \
    if (mg_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                   \
      ::mg::cuda::throw_cublas_error(mg_cublas_status_, #call, __FILE__, __LINE__);                   \
  } while (0)
