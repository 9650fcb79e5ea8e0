#pragma once
// Choosing the next token from logits: temperature, top-k and top-p (nucleus) filtering, then a
// draw from the explicit generator (greedy when temperature is 0).
#include <vector>

#include "tensor/random.h"

namespace mg::apps {

struct SamplingOptions {
  double temperature = 0.8;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off; else keep the k most likely tokens
  double top_p = 1.0;        // 1 = off; else the smallest set whose probability reaches top_p
};

// Throws mg::Error naming the option when one is out of range.
void validate(const SamplingOptions& options);
int64_t sample_token(const std::vector<float>& logits, const SamplingOptions& options, Generator& gen);

}  // namespace mg::apps
