// `mambagrad generate`: a prompt processed in parallel, then one token at a time, streamed as it
// is produced. The model is one of our checkpoints (--checkpoint; it says which kind of model it
// holds) or a pretrained Hugging Face Mamba directory (--model). Mamba continues with its
// recurrent step (O(1) work and memory per token), GPT with its KV cache (work and memory growing
// with the position).
#include "apps/generate.h"

#include "apps/cli_checks.h"

#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/common/model_loading.h"
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
    std::string model_dir;
    std::string prompt = "\n";
    bool ignore_eos = false;
    int64_t max_new_tokens = 500;
    SamplingOptions sampling;
    uint64_t seed = 0;
    int threads = 1;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a trained checkpoint (Mamba or GPT) or a pretrained model");
  auto* checkpoint = cmd->add_option("--checkpoint", flags->checkpoint, "Checkpoint written by `mambagrad train`")
                         ->capture_default_str();
  cmd->add_option("--model", flags->model_dir,
                  "Pretrained Hugging Face Mamba directory (config.json, model.safetensors, tokenizer.json)")
      ->check(CLI::ExistingDirectory)->excludes(checkpoint);
  cmd->add_option("--prompt", flags->prompt, "Text to continue (a character model: every character must be in its vocabulary)");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "Keep going past the model's end-of-text token");
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
    LoadedModel loaded = load_model(flags->model_dir, flags->model_dir.empty() ? flags->checkpoint : "");
    loaded.model->eval();
    MG_CHECK(!flags->prompt.empty(), "generate: --prompt must not be empty");
    std::vector<int64_t> prompt = loaded.tokenizer->encode(flags->prompt);
    MG_CHECK(!prompt.empty(), "generate: the prompt encodes to no tokens");
    Generator gen(flags->seed);
    text::StreamDecoder stream(*loaded.tokenizer);
    auto print = [](const std::string& text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };

    print(flags->prompt);
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<GenerationSession> session = loaded.model->start_generation(1);
    std::vector<float> logits = as_vector(session->feed(from_vector(prompt, {1, static_cast<int64_t>(prompt.size())})));
    auto after_prompt = std::chrono::steady_clock::now();
    int64_t generated = 0;
    for (int64_t i = 0; i < flags->max_new_tokens; ++i) {
      int64_t token = sample_token(logits, flags->sampling, gen);
      ++generated;
      if (loaded.eos_token_id && token == *loaded.eos_token_id && !flags->ignore_eos) break;
      // A padded vocabulary's extra rows have no text: print nothing for them.
      if (token < loaded.tokenizer->vocab_size()) print(stream.push(token));
      if (i + 1 < flags->max_new_tokens) logits = as_vector(session->feed(tensor({token}).reshape({1, 1})));
    }
    print(stream.finish());
    auto end = std::chrono::steady_clock::now();
    double prompt_s = std::chrono::duration<double>(after_prompt - start).count();
    double gen_s = std::chrono::duration<double>(end - after_prompt).count();
    std::fprintf(stderr, "\n[generate: prompt of %zu tokens in %.3f s; %ld new tokens in %.3f s = %.1f tokens/s]\n",
                 prompt.size(), prompt_s, static_cast<long>(generated), gen_s,
                 static_cast<double>(generated) / std::max(gen_s, 1e-9));
  });
}

}  // namespace mg::apps
