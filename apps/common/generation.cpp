#include "apps/common/generation.h"

#include <chrono>

#include "apps/common/token_stepper.h"
#include "autograd/grad_mode.h"
#include "tensor/factory.h"

namespace mg::apps {

namespace {
using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }
std::vector<float> as_vector(const Tensor& logits) { return logits.reshape({-1}).to_vector<float>(); }  // (1, V)
}  // namespace

std::vector<int64_t> generate_tokens(LanguageModel& model, const std::vector<int64_t>& prompt,
                                     const GenerationOptions& options, const TokenCallback& on_token,
                                     GenerationStats* stats) {
  validate(options.sampling);
  MG_CHECK(!prompt.empty(), "generate: the prompt encodes to no tokens");
  NoGradGuard no_grad;
  Generator gen(options.seed);
  const auto start = Clock::now();
  std::unique_ptr<GenerationSession> session = model.start_generation(1);
  const Tensor ids = from_vector(prompt, {1, static_cast<int64_t>(prompt.size())}).to(options.device);
  std::vector<float> logits = as_vector(session->feed(ids));  // the host waits for the prompt here
  const auto after_prompt = Clock::now();
  TokenStepper stepper([&](const Tensor& token) { return session->feed(token.reshape({1, 1})); }, options.device, 1,
                       session->step_is_replayable());
  std::vector<int64_t> generated;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int64_t token = sample_token(logits, options.sampling, gen);
    generated.push_back(token);
    if (on_token) on_token(token, logits);
    if (options.eos_token_id && token == *options.eos_token_id) break;
    if (i + 1 < options.max_new_tokens) logits = as_vector(stepper.step({token}));
  }
  if (stats) {
    stats->prompt_seconds = seconds(start, after_prompt);
    stats->generate_seconds = seconds(after_prompt, Clock::now());
    stats->replayed = stepper.replaying();
  }
  return generated;
}

}  // namespace mg::apps
