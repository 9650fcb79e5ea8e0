#include "apps/common/device_option.h"

#include <cstdio>

#include "cuda/runtime.h"
#include "tensor/error.h"

namespace mg::apps {

Device device_from_flag(const std::string& value, const std::string& flag) {
  Device device;
  try {
    device = parse_device(value);
  } catch (const Error&) {
    throw Error(str(flag, " ", value, ": expected cpu, cuda or cuda:N"));
  }
  if (device.is_cpu()) return device;
#ifndef MG_WITH_CUDA
  throw Error(str(flag, " ", value, ": this build of mambagrad has no CUDA support (configure it with -DMG_CUDA=ON ",
                  "on a machine with the CUDA toolkit)"));
#endif
  const int gpus = cuda_device_count();
  MG_CHECK(gpus > 0, flag, " ", value, ": no CUDA GPU is visible on this machine");
  MG_CHECK(device.index < gpus, flag, " ", value, ": only ", gpus, gpus == 1 ? " GPU is" : " GPUs are",
           " visible (cuda:0", gpus > 1 ? str(" to cuda:", gpus - 1) : std::string(), ")");
  return device;
}

std::string device_memory_note(Device device) {
  if (!device.is_cuda()) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f GB peak",
                static_cast<double>(cuda::memory_stats(device.index).peak_allocated_bytes) / 1e9);
  return buf;
}

}  // namespace mg::apps
