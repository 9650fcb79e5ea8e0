#pragma once
// Optimizer: the base of AdamW and SGD. It owns parameter groups (each with its own lr and weight
// decay) and per-parameter state, keyed by the parameter's name so that checkpoints say what each
// tensor belongs to.
//
// step() visits every parameter that has a gradient, creates its state on the first visit
// (`step` = 0 and one zero tensor per slot, shaped like the parameter), counts the step, and calls
// the subclass's update(). Parameters without a gradient are skipped and keep their state.
//
// state_dict() holds, for every parameter with state, "<name>.step" (int64, 0-d) and
// "<name>.<slot>" per slot (AdamW: exp_avg, exp_avg_sq; SGD: momentum_buffer). Learning rates are
// not in it: a training loop sets them from its schedule every step.
#include <string>
#include <unordered_map>
#include <vector>

#include "nn/module.h"
#include "nn/state_dict.h"

namespace mg::optim {

struct ParamGroup {
  nn::NamedTensors params;  // (name, parameter); names unique over all groups
  double lr = 1e-3;
  double weight_decay = 0.0;
};

class Optimizer {
 public:
  Optimizer(std::string name, std::vector<ParamGroup> groups, std::vector<std::string> slot_names);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  void step();
  void zero_grad();  // drops every parameter's .grad

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  void set_lr(double lr);  // every group
  // Steps taken by the parameter `name` (0 before its first update).
  int64_t step_count(const std::string& name) const;

  nn::StateDict state_dict() const;  // tensors share data with the optimizer's state
  // Replaces the state with copies of `state`'s tensors. Throws mg::Error, changing nothing, on
  // keys for unknown parameters or slots, a parameter with only part of its state, or tensors of
  // the wrong shape or dtype.
  void load_state_dict(const nn::StateDict& state);

 protected:
  struct ParamState {
    int64_t step = 0;
    std::vector<Tensor> slots;  // one per slot name, contiguous, on the param's device, the param's dtype
  };
  // param and grad are contiguous tensors of one dtype and device; state.step already counts this step.
  virtual void update(Tensor& param, const Tensor& grad, ParamState& state, const ParamGroup& group) = 0;
  // Every parameter of this step at once (a GPU optimizer updates them all in one launch); by
  // default, update() for each in turn.
  struct Update {
    Tensor param, grad;
    ParamState* state;
    const ParamGroup* group;
  };
  virtual void update_all(std::vector<Update>& updates);

  const std::string name_;

 private:
  std::vector<ParamGroup> groups_;
  std::vector<std::string> slot_names_;
  std::unordered_map<std::string, ParamState> state_;
};

}  // namespace mg::optim
