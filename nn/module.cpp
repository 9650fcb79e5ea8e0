#include "nn/module.h"

#include <sstream>
#include <unordered_set>

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/view.h"

namespace mg::nn {

namespace {

// Points `t`'s existing TensorImpl at `src`'s data, so every handle to `t` sees the new data
// (PyTorch's set_data). The autograd history of `t` is unchanged: parameters are leaves.
void replace_data(const Tensor& t, const Tensor& src) {
  TensorImpl* impl = t.impl();
  impl->storage = src.impl()->storage;
  impl->sizes = src.shape();
  impl->strides = src.strides();
  impl->offset = src.offset();
  impl->dtype = src.dtype();
}

// Keeps the first name of a tensor registered under several (a tied weight): an optimizer must
// update it once, and a checkpoint must store it once.
NamedTensors without_duplicates(NamedTensors all) {
  NamedTensors out;
  std::unordered_set<const TensorImpl*> seen;
  for (auto& [name, t] : all)
    if (seen.insert(t.impl()).second) out.emplace_back(std::move(name), std::move(t));
  return out;
}

// "'a', 'b', 'c' and 4 more": long key lists stay readable in one error line.
std::string quoted_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 8;
  std::ostringstream out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out << (i ? ", '" : "'") << names[i] << "'";
  if (names.size() > kShown) out << " and " << names.size() - kShown << " more";
  return out.str();
}

}  // namespace

void Module::check_new_name(const std::string& name, const char* what) const {
  MG_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_, ": ", what, " name '", name,
           "' must be non-empty and contain no '.'");
  bool taken = false;
  for (const auto& [n, t] : parameters_) taken |= n == name;
  for (const auto& b : buffers_) taken |= b.name == name;
  for (const auto& [n, m] : children_) taken |= n == name;
  MG_CHECK(!taken, type_name_, ": cannot register ", what, " '", name, "': the name is already taken");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_new_name(name, "parameter");
  MG_CHECK(tensor.defined(), type_name_, ": parameter '", name, "' is an undefined tensor");
  MG_CHECK(is_floating(tensor.dtype()), type_name_, ": parameter '", name, "' must be floating-point, got ",
           tensor.dtype());
  if (!tensor.is_leaf()) tensor = tensor.detach();  // a parameter is a leaf of every graph
  tensor.requires_grad_(requires_grad);
  parameters_.emplace_back(name, tensor);
  return tensor;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor, bool persistent) {
  check_new_name(name, "buffer");
  MG_CHECK(tensor.defined(), type_name_, ": buffer '", name, "' is an undefined tensor");
  buffers_.push_back({name, tensor, persistent});
  return tensor;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name, "module");
  MG_CHECK(module != nullptr, type_name_, ": child module '", name, "' is null");
  MG_CHECK(module.get() != this, type_name_, ": a module cannot be its own child ('", name, "')");
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, const Collect& what, NamedTensors& out) const {
  if (what.parameters)
    for (const auto& [name, t] : parameters_) out.emplace_back(prefix + name, t);
  if (what.buffers)
    for (const auto& b : buffers_)
      if (b.persistent || !what.persistent_only) out.emplace_back(prefix + b.name, b.tensor);
  if (!what.recurse) return;
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", what, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", {.parameters = true, .recurse = recurse}, out);
  return without_duplicates(std::move(out));
}

TensorList Module::parameters(bool recurse) const {
  TensorList out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", {.buffers = true, .recurse = recurse}, out);
  return without_duplicates(std::move(out));
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t total = 0;
  for (const auto& [name, t] : named_parameters()) total += t.numel();
  return total;
}

void Module::train(bool training) {
  training_ = training;
  for (const auto& [name, child] : children_) child->train(training);
}

void Module::zero_grad() {
  for (const auto& [name, t] : named_parameters()) Tensor(t).zero_grad();
}

StateDict Module::state_dict() const {
  NamedTensors all;
  collect("", {.parameters = true, .buffers = true, .persistent_only = true}, all);
  StateDict out;
  for (const auto& [name, t] : without_duplicates(std::move(all))) out.set(name, t.detach());
  return out;
}

LoadResult Module::load_state_dict(const StateDict& state, bool strict) {
  StateDict own = state_dict();
  LoadResult result;
  std::vector<std::string> mismatches;
  for (const auto& [name, mine] : own) {
    const Tensor* theirs = state.find(name);
    if (theirs == nullptr) {
      result.missing_keys.push_back(name);
    } else if (!theirs->defined()) {
      mismatches.push_back(str("'", name, "' is an undefined tensor in the state dict"));
    } else if (theirs->shape() != mine.shape()) {
      mismatches.push_back(str("shape mismatch for '", name, "': ", theirs->shape(), " in the state dict but ",
                               mine.shape(), " in the module"));
    } else if (theirs->dtype() != mine.dtype()) {
      mismatches.push_back(str("dtype mismatch for '", name, "': ", theirs->dtype(), " in the state dict but ",
                               mine.dtype(), " in the module"));
    }
  }
  for (const auto& [name, t] : state)
    if (!own.contains(name)) result.unexpected_keys.push_back(name);

  std::vector<std::string> problems;
  if (strict && !result.missing_keys.empty())
    problems.push_back(str("missing keys: ", quoted_list(result.missing_keys)));
  if (strict && !result.unexpected_keys.empty())
    problems.push_back(str("unexpected keys: ", quoted_list(result.unexpected_keys)));
  problems.insert(problems.end(), mismatches.begin(), mismatches.end());
  if (!problems.empty()) {
    std::string message = str(type_name_, ".load_state_dict: ");
    for (size_t i = 0; i < problems.size(); ++i) message += (i ? "; " : "") + problems[i];
    throw Error(message);
  }

  NoGradGuard no_grad;
  for (const auto& [name, mine] : own) {
    const Tensor* theirs = state.find(name);
    if (theirs == nullptr) continue;
    Tensor dst = mine;
    copy_inplace(dst, to_device(theirs->detach(), mine.device()));
  }
  return result;
}

template <class Fn>
void Module::for_each_tensor(Fn&& fn) {
  for (auto& [name, t] : parameters_) fn(t);
  for (auto& b : buffers_) fn(b.tensor);
  for (auto& [name, child] : children_) child->for_each_tensor(fn);
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  for_each_tensor([&](Tensor& t) {
    if (t.device() == device) return;
    Tensor grad = t.grad();
    replace_data(t, to_device(t.detach(), device));
    if (grad.defined()) replace_data(grad, to_device(grad, device));
  });
}

void Module::to(DType dtype) {
  MG_CHECK(is_floating(dtype), type_name_, ".to: parameters can only be converted to a floating dtype, not ", dtype);
  NoGradGuard no_grad;
  for_each_tensor([&](Tensor& t) {
    if (!is_floating(t.dtype()) || t.dtype() == dtype) return;
    Tensor grad = t.grad();
    replace_data(t, to_dtype(t.detach(), dtype));
    if (grad.defined()) replace_data(grad, to_dtype(grad, dtype));
  });
}

}  // namespace mg::nn
