#pragma once
#include "nn/module.h"
#include "tensor/random.h"

namespace mg::nn {

// Inverted dropout with probability p while training; the identity in eval mode (or p == 0).
// The masks come from the generator given here (kept by reference: it must outlive the module),
// or from the one passed to forward(x, gen).
class Dropout : public UnaryModule {
 public:
  explicit Dropout(double p, Generator& gen = default_generator());
  Tensor forward(const Tensor& x) override;
  Tensor forward(const Tensor& x, Generator& gen);

  const double p;

 private:
  Generator* gen_;
};

}  // namespace mg::nn
