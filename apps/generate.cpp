// `mambagrad generate`: a prompt processed in parallel, then one token at a time, streamed as it
// is produced. The model is one of our checkpoints (--checkpoint; it says which kind of model it
// holds) or a pretrained Hugging Face Mamba directory (--model). Mamba continues with its
// recurrent step (O(1) work and memory per token), GPT with its KV cache (work and memory growing
// with the position). On a GPU (--device cuda) a session whose step is fixed-shape (Mamba's) is
// captured once in a CUDA graph and replayed per token (apps/common/token_stepper.h); a growing one
// (GPT's) runs eagerly. Sampling stays on the host: only the logits row comes back per token.
#include "apps/generate.h"

#include "apps/cli_checks.h"

#include <cstdio>
#include <memory>

#include "apps/common/device_option.h"
#include "apps/common/generation.h"
#include "apps/common/model_loading.h"
#include "autograd/grad_mode.h"
#include "ops/cpu/parallel.h"

namespace mg::apps {

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
    std::string device = "cpu";
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
  cmd->add_option("--device", flags->device, "Where to run the model: cpu, cuda (GPU 0) or cuda:N")
      ->capture_default_str();
  cmd->add_option("--threads", flags->threads,
                  "CPU threads (2 gives ~1.6x on an idle 2-core machine; keep 1 when the cores are busy)")
      ->capture_default_str()->check(kPositive);
  cmd->callback([flags] {
    validate(flags->sampling);
    const Device device = device_from_flag(flags->device);
    set_num_threads(flags->threads);
    NoGradGuard no_grad;
    LoadedModel loaded = load_model(flags->model_dir, flags->model_dir.empty() ? flags->checkpoint : "");
    loaded.model->to(device);
    loaded.model->eval();
    MG_CHECK(!flags->prompt.empty(), "generate: --prompt must not be empty");
    std::vector<int64_t> prompt = loaded.tokenizer->encode(flags->prompt);
    text::StreamDecoder stream(*loaded.tokenizer);
    auto print = [](const std::string& text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };

    print(flags->prompt);
    GenerationOptions options{.max_new_tokens = flags->max_new_tokens, .sampling = flags->sampling,
                              .seed = flags->seed, .eos_token_id = flags->ignore_eos ? std::nullopt : loaded.eos_token_id,
                              .device = device};
    GenerationStats stats;
    const std::vector<int64_t> generated = generate_tokens(
        *loaded.model, prompt, options,
        [&](int64_t token, const std::vector<float>&) {
          // Not the end of text; nor a padded vocabulary's extra rows, which have no text.
          if (token != options.eos_token_id && token < loaded.tokenizer->vocab_size()) print(stream.push(token));
        },
        &stats);
    print(stream.finish());
    const std::string memory = device_memory_note(device);
    std::fprintf(stderr, "\n[generate: prompt of %zu tokens in %.3f s; %zu new tokens in %.3f s = %.1f tokens/s%s%s%s%s]\n",
                 prompt.size(), stats.prompt_seconds, generated.size(), stats.generate_seconds,
                 static_cast<double>(generated.size()) / std::max(stats.generate_seconds, 1e-9),
                 device.is_cuda() ? " on " : "", device.is_cuda() ? device.str().c_str() : "",
                 stats.replayed ? " (CUDA graph)" : "", memory.empty() ? "" : (", " + memory).c_str());
  });
}

}  // namespace mg::apps
