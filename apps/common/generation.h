#pragma once
// Generating tokens from a language model, as `mambagrad generate` does: the prompt in one pass,
// then one token at a time, each sampled on the host from the last logits. On a GPU only the
// logits row comes back per token, and a session whose step is fixed-shape (Mamba's recurrent
// step) is captured once in a CUDA graph and replayed (apps/common/token_stepper.h); a growing one
// (GPT's KV cache) runs eagerly. A function, so tests can compare devices token for token.
#include <functional>
#include <optional>
#include <vector>

#include "apps/common/sampling.h"
#include "models/language_model.h"

namespace mg::apps {

struct GenerationOptions {
  int64_t max_new_tokens = 500;
  SamplingOptions sampling;
  uint64_t seed = 0;                    // of the sampler
  std::optional<int64_t> eos_token_id = std::nullopt;  // stop after producing it (it is still passed to on_token)
  Device device = Device::cpu();        // where the model is (the caller moves it there)
};

struct GenerationStats {
  double prompt_seconds = 0, generate_seconds = 0;
  bool replayed = false;  // the per-token step ran from a CUDA graph
};

// Each new token, with the logits (vocab) it was sampled from.
using TokenCallback = std::function<void(int64_t token, const std::vector<float>& logits)>;

// The new tokens after `prompt` (non-empty), at most max_new_tokens of them.
std::vector<int64_t> generate_tokens(LanguageModel& model, const std::vector<int64_t>& prompt,
                                     const GenerationOptions& options, const TokenCallback& on_token = {},
                                     GenerationStats* stats = nullptr);

}  // namespace mg::apps
