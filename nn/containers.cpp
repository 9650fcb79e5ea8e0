#include "nn/containers.h"

namespace mg::nn {

const std::shared_ptr<Module>& ModuleList::operator[](size_t i) const {
  MG_CHECK(i < items_.size(), "ModuleList: index ", i, " is out of range for ", items_.size(), " modules");
  return items_[i];
}

Sequential::Sequential(std::vector<std::shared_ptr<UnaryModule>> modules) : Sequential() {
  for (auto& m : modules) push_back(std::move(m));
}

const std::shared_ptr<UnaryModule>& Sequential::operator[](size_t i) const {
  MG_CHECK(i < items_.size(), "Sequential: index ", i, " is out of range for ", items_.size(), " modules");
  return items_[i];
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor h = x;
  for (const auto& m : items_) h = m->forward(h);
  return h;
}

}  // namespace mg::nn
