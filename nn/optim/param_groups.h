#pragma once
// The standard split of a model's parameters for AdamW: weight decay for the matrices, none for
// the parameters that decay would only distort.
#include "nn/optim/optimizer.h"

namespace mg::optim {

// True for parameters that get no weight decay: any tensor with fewer than 2 dimensions (biases,
// norm weights, D), and by name (the last dotted component) "bias", "A_log", "D", or any component
// containing "norm" (Mamba's official code exempts A_log and D; decaying A_log would pull every
// channel's decay rate towards exp(0) = 1).
bool is_no_decay_parameter(const std::string& name, const Tensor& parameter);

// Two groups, both with learning rate `lr`: first the parameters that decay (with
// `weight_decay`), then the others (weight decay 0); an empty group is left out. Parameters that
// do not require grad (frozen) are not included.
std::vector<ParamGroup> weight_decay_groups(const nn::NamedTensors& params, double lr, double weight_decay);

}  // namespace mg::optim
