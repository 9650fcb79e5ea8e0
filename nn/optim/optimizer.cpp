#include "nn/optim/optimizer.h"

#include <unordered_set>

#include "autograd/grad_mode.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::optim {

Optimizer::Optimizer(std::string name, std::vector<ParamGroup> groups, std::vector<std::string> slot_names)
    : name_(std::move(name)), groups_(std::move(groups)), slot_names_(std::move(slot_names)) {
  std::unordered_set<std::string> names;
  std::unordered_set<const TensorImpl*> tensors;
  for (const ParamGroup& g : groups_) {
    MG_CHECK(g.lr >= 0 && g.weight_decay >= 0, name_, ": lr and weight_decay must be non-negative, got lr ", g.lr,
             " and weight_decay ", g.weight_decay);
    for (const auto& [param_name, p] : g.params) {
      MG_CHECK(p.defined() && is_floating(p.dtype()), name_, ": parameter '", param_name,
               "' must be a defined floating-point tensor");
      MG_CHECK(p.is_leaf() && p.requires_grad(), name_, ": parameter '", param_name,
               "' must be a leaf tensor that requires grad");
      MG_CHECK(names.insert(param_name).second, name_, ": parameter name '", param_name, "' appears twice");
      MG_CHECK(tensors.insert(p.impl()).second, name_, ": parameter '", param_name,
               "' is the same tensor as another parameter (list a tied weight once)");
    }
  }
}

void Optimizer::step() {
  NoGradGuard no_grad;
  std::vector<Update> updates;
  for (const ParamGroup& group : groups_) {
    for (const auto& [param_name, p] : group.params) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      MG_CHECK(p.is_contiguous(), name_, ": parameter '", param_name, "' ", p.shape(), " must be contiguous");
      MG_CHECK(grad.device() == p.device(), name_, ": the gradient of '", param_name, "' is on ", grad.device(),
               " but the parameter on ", p.device());
      ParamState& state = state_[param_name];
      if (state.slots.empty())
        for (size_t s = 0; s < slot_names_.size(); ++s) state.slots.push_back(zeros_like(p));
      state.step += 1;
      updates.push_back({p, contiguous(grad), &state, &group});
    }
  }
  update_all(updates);
}

void Optimizer::update_all(std::vector<Update>& updates) {
  for (Update& u : updates) update(u.param, u.grad, *u.state, *u.group);
}

void Optimizer::zero_grad() {
  for (const ParamGroup& group : groups_)
    for (const auto& [param_name, p] : group.params) Tensor(p).zero_grad();
}

void Optimizer::set_lr(double lr) {
  MG_CHECK(lr >= 0, name_, ": learning rate must be non-negative, got ", lr);
  for (ParamGroup& group : groups_) group.lr = lr;
}

int64_t Optimizer::step_count(const std::string& name) const {
  auto it = state_.find(name);
  return it == state_.end() ? 0 : it->second.step;
}

nn::StateDict Optimizer::state_dict() const {
  nn::StateDict out;
  for (const ParamGroup& group : groups_) {
    for (const auto& [param_name, p] : group.params) {
      auto it = state_.find(param_name);
      if (it == state_.end()) continue;
      out.set(param_name + ".step", full({}, static_cast<double>(it->second.step), {.dtype = DType::Int64}));
      for (size_t s = 0; s < slot_names_.size(); ++s) out.set(param_name + "." + slot_names_[s], it->second.slots[s]);
    }
  }
  return out;
}

void Optimizer::load_state_dict(const nn::StateDict& state) {
  std::unordered_map<std::string, ParamState> loaded;
  size_t used = 0;
  for (const ParamGroup& group : groups_) {
    for (const auto& [param_name, p] : group.params) {
      const Tensor* step = state.find(param_name + ".step");
      size_t present = step != nullptr;
      for (const std::string& slot : slot_names_) present += state.contains(param_name + "." + slot);
      if (present == 0) continue;  // no state yet for this parameter
      MG_CHECK(present == slot_names_.size() + 1, name_, ".load_state_dict: parameter '", param_name,
               "' has only part of its state (", present, " of ", slot_names_.size() + 1, " tensors)");
      MG_CHECK(step->dtype() == DType::Int64 && step->numel() == 1, name_, ".load_state_dict: '", param_name,
               ".step' must be one int64 value, got ", step->shape(), " ", step->dtype());
      ParamState ps;
      ps.step = step->item<int64_t>();
      MG_CHECK(ps.step >= 0, name_, ".load_state_dict: '", param_name, ".step' is negative (", ps.step, ")");
      for (const std::string& slot : slot_names_) {
        const Tensor& t = state.at(param_name + "." + slot);
        MG_CHECK(t.shape() == p.shape() && t.dtype() == p.dtype(), name_, ".load_state_dict: '", param_name, ".", slot,
                 "' is ", t.shape(), " ", t.dtype(), " but the parameter is ", p.shape(), " ", p.dtype());
        ps.slots.push_back(to_device(t.detach(), p.device()).clone());  // a copy of its own, on the param's device
      }
      loaded.emplace(param_name, std::move(ps));
      used += present;
    }
  }
  if (used != state.size()) {
    std::unordered_set<std::string> expected;
    for (const auto& [param_name, ps] : loaded) {
      expected.insert(param_name + ".step");
      for (const std::string& slot : slot_names_) expected.insert(param_name + "." + slot);
    }
    std::string unknown;
    for (const auto& [key, t] : state)
      if (!expected.count(key)) unknown += (unknown.empty() ? "'" : ", '") + key + "'";
    MG_CHECK(false, name_, ".load_state_dict: keys that belong to no parameter or slot of this optimizer: ", unknown);
  }
  state_ = std::move(loaded);
}

}  // namespace mg::optim
