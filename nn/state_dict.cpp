#include "nn/state_dict.h"

namespace mg::nn {

void StateDict::set(const std::string& name, const Tensor& tensor) {
  auto it = index_.find(name);
  if (it != index_.end()) {
    items_[it->second].second = tensor;
    return;
  }
  index_.emplace(name, items_.size());
  items_.emplace_back(name, tensor);
}

const Tensor& StateDict::at(const std::string& name) const {
  const Tensor* t = find(name);
  MG_CHECK(t != nullptr, "state dict: no tensor named '", name, "' (it holds ", items_.size(), " tensors)");
  return *t;
}

const Tensor* StateDict::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

bool StateDict::erase(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) return false;
  items_.erase(items_.begin() + static_cast<std::ptrdiff_t>(it->second));
  index_.clear();  // positions after the erased one moved; rebuilding is simplest
  for (size_t i = 0; i < items_.size(); ++i) index_.emplace(items_[i].first, i);
  return true;
}

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  out.reserve(items_.size());
  for (const auto& [name, tensor] : items_) out.push_back(name);
  return out;
}

StateDict StateDict::with_prefix(const std::string& prefix) const {
  StateDict out;
  for (const auto& [name, tensor] : items_) out.set(prefix + name, tensor);
  return out;
}

StateDict StateDict::with_prefix_removed(const std::string& prefix) const {
  StateDict out;
  for (const auto& [name, tensor] : items_)
    if (name.compare(0, prefix.size(), prefix) == 0) out.set(name.substr(prefix.size()), tensor);
  return out;
}

void StateDict::update(const StateDict& other) {
  for (const auto& [name, tensor] : other) set(name, tensor);
}

}  // namespace mg::nn
