#include "tensor/device.h"

#include <algorithm>
#include <cctype>

#include "tensor/error.h"

namespace mg {

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  const std::string prefix = "cuda:";
  const std::string index = text.rfind(prefix, 0) == 0 ? text.substr(prefix.size()) : "";
  // Digits only (no sign, space or exponent), and few enough to fit an int.
  const bool digits = !index.empty() && index.size() <= 6 &&
                      std::all_of(index.begin(), index.end(), [](unsigned char c) { return std::isdigit(c) != 0; });
  MG_CHECK(digits, "device \"", text, "\" is not one of cpu, cuda, cuda:N");
  return Device::cuda(std::stoi(index));
}

}  // namespace mg
