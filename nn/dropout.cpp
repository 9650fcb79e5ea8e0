#include "nn/dropout.h"

#include "ops/dropout.h"

namespace mg::nn {

Dropout::Dropout(double p, Generator& gen) : UnaryModule("Dropout"), p(p), gen_(&gen) {
  MG_CHECK(p >= 0.0 && p <= 1.0, "Dropout: probability must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) { return forward(x, *gen_); }
Tensor Dropout::forward(const Tensor& x, Generator& gen) { return dropout(x, p, gen, is_training()); }

}  // namespace mg::nn
