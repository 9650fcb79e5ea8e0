#pragma once
// The device a program runs on, from its --device flag: "cpu", "cuda" (GPU 0) or "cuda:N".
#include <string>

#include "tensor/device.h"

namespace mg::apps {

// Throws mg::Error naming the flag for a value that is not a device, and for a GPU that this
// build (compiled without CUDA) or this machine (no such GPU visible) does not have.
Device device_from_flag(const std::string& value, const std::string& flag = "--device");

// The line progress output shows for a device ("" on the CPU): the GPU's peak memory so far,
// e.g. "1.23 GB peak".
std::string device_memory_note(Device device);

}  // namespace mg::apps
