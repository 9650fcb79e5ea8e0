#pragma once
// StateDict: tensors by name, in insertion order, with lookup by name. What Module::state_dict()
// returns, what optimizers save, and what a safetensors file holds.
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace mg::nn {

class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  // Inserts `name`, or replaces its tensor (keeping its position) when it is already there.
  void set(const std::string& name, const Tensor& tensor);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor stored under `name`; throws mg::Error naming the key when it is absent.
  const Tensor& at(const std::string& name) const;
  // Null when absent.
  const Tensor* find(const std::string& name) const;
  // Removes `name`; returns whether it was there.
  bool erase(const std::string& name);

  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  std::vector<Item>::const_iterator begin() const { return items_.begin(); }
  std::vector<Item>::const_iterator end() const { return items_.end(); }
  std::vector<std::string> keys() const;

  // The same tensors with `prefix` put before every name ("optimizer." + name).
  StateDict with_prefix(const std::string& prefix) const;
  // The entries whose names start with `prefix`, with the prefix removed.
  StateDict with_prefix_removed(const std::string& prefix) const;
  // Every entry of `other`, set into this one (later entries win).
  void update(const StateDict& other);

 private:
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in items_
};

}  // namespace mg::nn
