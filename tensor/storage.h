#pragma once
// A reference-counted block of bytes on one device. Views share a Storage.
#include <cstddef>
#include <memory>

#include "tensor/device.h"

namespace mg {

class Storage {
 public:
  // Allocates nbytes on `device` (64-byte aligned on the CPU). Contents are uninitialized.
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
};

// Copies nbytes between any two devices (host<->device, device<->device, host<->host).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
// Sets nbytes at `ptr` on `device` to zero.
void zero_bytes(void* ptr, Device device, size_t nbytes);

}  // namespace mg
