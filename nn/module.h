#pragma once
// Module: the base of every layer and model. A module registers its parameters, buffers and child
// modules by name; named_parameters() then walks the tree and gives each parameter its dotted name
// ("layers.3.mixer.in_proj.weight"), which is also its key in state_dict() and in checkpoints.
//
// Order (as in PyTorch): a module's own parameters in registration order, then each child's, in
// the order the children were registered, recursively.
//
// A tensor registered under several names (a tied weight) is listed once, under its first name,
// by named_parameters(), named_buffers() and state_dict().
//
// Registered tensors are shared handles: a layer keeps `Tensor weight` as a member and the
// registry holds the same tensor, so load_state_dict() and to() change the data in place and every
// holder (the layer, an optimizer) sees the change.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/state_dict.h"
#include "tensor/tensor.h"

namespace mg::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// What load_state_dict(..., strict = false) skipped.
struct LoadResult {
  std::vector<std::string> missing_keys;     // in the module, not in the state dict
  std::vector<std::string> unexpected_keys;  // in the state dict, not in the module
};

class Module {
 public:
  explicit Module(std::string type_name = "Module") : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  const std::string& type_name() const { return type_name_; }

  // --- registration (names are non-empty, without dots, unique within this module)
  // Makes `tensor` (a floating-point leaf) a parameter: it requires grad unless told otherwise.
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  // A tensor that is state but not trained (running statistics, masks). Persistent buffers are in
  // state_dict(); others are not.
  Tensor register_buffer(const std::string& name, Tensor tensor, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // --- walking the tree
  NamedTensors named_parameters(bool recurse = true) const;
  TensorList parameters(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }
  std::vector<std::shared_ptr<Module>> children() const;
  // This module (named "") and every descendant, depth-first, with dotted names.
  std::vector<std::pair<std::string, Module*>> named_modules();
  int64_t num_parameters() const;  // total elements of all parameters

  // --- modes and gradients
  void train(bool training = true);  // this module and all descendants
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();  // drops every parameter's .grad (the next backward starts from nothing)

  // --- state
  // Parameters and persistent buffers by dotted name, detached (they share data with the module).
  StateDict state_dict() const;
  // Copies values from `state` into the module's tensors in place. Every problem is collected and
  // reported in one mg::Error: keys missing from `state`, keys the module does not have (both
  // only when strict), and tensors whose shape or dtype differ (always). Nothing is copied unless
  // everything checks out. Tensors in `state` may live on any device and be non-contiguous.
  LoadResult load_state_dict(const StateDict& state, bool strict = true);

  // Moves (or converts) every parameter, buffer and gradient in place; floating-point tensors
  // only, for the dtype form.
  void to(Device device);
  void to(DType dtype);

 private:
  void check_new_name(const std::string& name, const char* what) const;
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  // Appends this module's parameters and/or buffers, then (when recurse) each child's: PyTorch's
  // state_dict order.
  struct Collect {
    bool parameters = false, buffers = false, persistent_only = false, recurse = true;
  };
  void collect(const std::string& prefix, const Collect& what, NamedTensors& out) const;
  template <class Fn>
  void for_each_tensor(Fn&& fn);

  struct Buffer {
    std::string name;
    Tensor tensor;
    bool persistent = true;
  };
  std::string type_name_;
  bool training_ = true;
  NamedTensors parameters_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

// A module whose forward maps one tensor to one tensor: what Sequential chains.
class UnaryModule : public Module {
 public:
  using Module::Module;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
};

}  // namespace mg::nn
