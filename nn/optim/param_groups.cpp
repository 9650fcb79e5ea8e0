#include "nn/optim/param_groups.h"

namespace mg::optim {

bool is_no_decay_parameter(const std::string& name, const Tensor& parameter) {
  if (parameter.dim() < 2) return true;
  const std::string last = name.substr(name.rfind('.') + 1);  // the whole name when it has no dot
  if (last == "bias" || last == "A_log" || last == "D") return true;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    if (name.substr(start, dot - start).find("norm") != std::string::npos) return true;
    start = dot + 1;
  }
  return false;
}

std::vector<ParamGroup> weight_decay_groups(const nn::NamedTensors& params, double lr, double weight_decay) {
  ParamGroup decay{{}, lr, weight_decay}, no_decay{{}, lr, 0.0};
  for (const auto& [name, p] : params) {
    if (!p.requires_grad()) continue;
    (is_no_decay_parameter(name, p) ? no_decay : decay).params.emplace_back(name, p);
  }
  std::vector<ParamGroup> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

}  // namespace mg::optim
