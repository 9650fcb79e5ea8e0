#include "tensor/storage.h"

#include <cstdlib>
#include <cstring>
#include <new>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "tensor/device_backend.h"
#include "tensor/error.h"

namespace mg {

namespace {

void check_cuda_device(Device device) {
#ifdef MG_WITH_CUDA
  int count = cuda::device_count();
  MG_CHECK(count > 0, "cuda: no CUDA GPU is available on this machine (asked for ", device, ")");
  MG_CHECK(device.index >= 0 && device.index < count, "cuda: device ", device, " does not exist (",
           count, " GPU(s) visible)");
#else
  throw Error(str("cuda: asked for a tensor on ", device,
                  " but mambagrad was built without CUDA (configure with -DMG_CUDA=ON)"));
#endif
}

// By default glibc returns freed memory over 128 KiB to the OS, so every new output of that size
// (a 256 x 256 matmul's, say) page-faults fresh zeroed pages: +58% CPU time on a 256^3 matmul
// (benchmarks/RESULTS.md). Keeping freed blocks up to glibc's 32 MiB mmap cap in the process lets
// the next allocation reuse warm memory. Bigger blocks are still mapped fresh each time; a caching
// allocator would cover those too.
void keep_freed_memory_in_process() {
#ifdef __GLIBC__
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)done;
#endif
}

}  // namespace

bool cuda_is_available() { return cuda_device_count() > 0; }

int cuda_device_count() {
#ifdef MG_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  size_t padded = std::max<size_t>((nbytes + 63) / 64 * 64, 64);  // never a zero-size allocation
  if (device.is_cpu()) {
    keep_freed_memory_in_process();
    data_ = std::aligned_alloc(64, padded);
    if (!data_) throw std::bad_alloc();
    return;
  }
  check_cuda_device(device);
#ifdef MG_WITH_CUDA
  data_ = cuda::device_malloc(padded, device.index);
#endif
}

Storage::~Storage() {
  if (device_.is_cpu()) {
    std::free(data_);
    return;
  }
#ifdef MG_WITH_CUDA
  cuda::device_free(data_, device_.index);
#endif
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cpu() && src_device.is_cpu()) {
    std::memcpy(dst, src, nbytes);
    return;
  }
#ifdef MG_WITH_CUDA
  if (dst_device.is_cuda() && src_device.is_cpu()) return cuda::memcpy_host_to_device(dst, src, nbytes, dst_device.index);
  if (dst_device.is_cpu() && src_device.is_cuda()) return cuda::memcpy_device_to_host(dst, src, nbytes, src_device.index);
  return cuda::memcpy_device_to_device(dst, dst_device.index, src, src_device.index, nbytes);
#else
  check_cuda_device(dst_device.is_cuda() ? dst_device : src_device);
#endif
}

void zero_bytes(void* ptr, Device device, size_t nbytes) {
  if (nbytes == 0) return;
  if (device.is_cpu()) {
    std::memset(ptr, 0, nbytes);
    return;
  }
#ifdef MG_WITH_CUDA
  cuda::memset_zero(ptr, nbytes, device.index);
#else
  check_cuda_device(device);
#endif
}

}  // namespace mg
