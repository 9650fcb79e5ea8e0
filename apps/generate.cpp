// `mambagrad generate`: a prompt processed in parallel, then one token at a time, streamed as it
// is produced. The checkpoint says which kind of model it holds: Mamba continues with its
// recurrent step (O(1) work and memory per token), GPT with its KV cache (work and memory growing
// with the position).
#include "apps/generate.h"

#include "apps/cli_checks.h"

#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/common/char_tokenizer.h"
#include "apps/common/checkpoint.h"
#include "apps/common/sampling.h"
#include "autograd/grad_mode.h"
#include "ops/cpu/parallel.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::apps {

namespace {
std::vector<float> as_vector(const Tensor& logits) { return logits.reshape({-1}).to_vector<float>(); }  // (1, V)
}  // namespace

void add_generate_command(CLI::App& app) {
  struct Flags {
    std::string checkpoint = "out/checkpoint.safetensors";
    std::string prompt = "\n";
    int64_t max_new_tokens = 500;
    SamplingOptions sampling;
    uint64_t seed = 0;
    int threads = 1;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a trained checkpoint (Mamba or GPT)");
  cmd->add_option("--checkpoint", flags->checkpoint, "Checkpoint written by `mambagrad train`")->capture_default_str();
  cmd->add_option("--prompt", flags->prompt, "Text to continue (every character must be in the model's vocabulary)");
  cmd->add_option("--max-new-tokens", flags->max_new_tokens, "Tokens to generate")->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--temperature", flags->sampling.temperature, "Softmax temperature (0 = greedy)")
      ->capture_default_str()->check(kNonNegative);
  cmd->add_option("--top-k", flags->sampling.top_k, "Sample among the k most likely tokens (0 = all)")
      ->capture_default_str()->check(kNonNegative);
  cmd->add_option("--top-p", flags->sampling.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0));
  cmd->add_option("--seed", flags->seed, "Random seed of the sampler")->capture_default_str();
  cmd->add_option("--threads", flags->threads,
                  "CPU threads (2 gives ~1.6x on an idle 2-core machine; keep 1 when the cores are busy)")
      ->capture_default_str()->check(kPositive);
  cmd->callback([flags] {
    validate(flags->sampling);
    set_num_threads(flags->threads);
    NoGradGuard no_grad;
    LoadedCheckpoint checkpoint = load_checkpoint(flags->checkpoint);
    std::shared_ptr<LanguageModel> model = model_from_checkpoint(checkpoint);
    model->eval();
    CharTokenizer tokenizer = CharTokenizer::from_vocabulary(checkpoint.info.vocabulary);
    MG_CHECK(!flags->prompt.empty(), "generate: --prompt must not be empty");
    std::vector<int64_t> prompt = tokenizer.encode(flags->prompt);
    Generator gen(flags->seed);

    std::fputs(flags->prompt.c_str(), stdout);
    std::fflush(stdout);
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<GenerationSession> session = model->start_generation(1);
    std::vector<float> logits = as_vector(session->feed(from_vector(prompt, {1, static_cast<int64_t>(prompt.size())})));
    auto after_prompt = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < flags->max_new_tokens; ++i) {
      int64_t token = sample_token(logits, flags->sampling, gen);
      std::fputc(tokenizer.decode(token), stdout);
      std::fflush(stdout);
      if (i + 1 < flags->max_new_tokens) logits = as_vector(session->feed(tensor({token}).reshape({1, 1})));
    }
    auto end = std::chrono::steady_clock::now();
    double prompt_s = std::chrono::duration<double>(after_prompt - start).count();
    double gen_s = std::chrono::duration<double>(end - after_prompt).count();
    std::fprintf(stderr, "\n[generate: prompt of %zu tokens in %.3f s; %ld new tokens in %.3f s = %.0f tokens/s]\n",
                 prompt.size(), prompt_s, static_cast<long>(flags->max_new_tokens), gen_s,
                 static_cast<double>(flags->max_new_tokens) / std::max(gen_s, 1e-9));
  });
}

}  // namespace mg::apps
