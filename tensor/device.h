#pragma once
// Where a tensor's bytes live. Every tensor carries one; ops check that their inputs agree.
#include <ostream>
#include <string>

namespace mg {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // which GPU; always 0 for the CPU

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool operator==(const Device&) const = default;
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

inline std::ostream& operator<<(std::ostream& out, const Device& device) { return out << device.str(); }

// "cpu", "cuda" (GPU 0) or "cuda:N", as Device::str() writes them. Throws mg::Error quoting the
// text for anything else. Says nothing about whether that GPU exists (cuda_device_count() does).
Device parse_device(const std::string& text);

// True when this build has CUDA support and at least one GPU is visible.
bool cuda_is_available();
// Number of visible GPUs (0 in a CPU-only build).
int cuda_device_count();

}  // namespace mg
