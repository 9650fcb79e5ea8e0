// libFuzzer harness: a whole training checkpoint through the loader the CLI uses (`generate
// --checkpoint`, `train --resume`): the safetensors file from disk, its metadata (format, config,
// tokenizer, step, sampler states, training options and run state), the model of its kind built
// from the config with its weights loaded strictly, the tokenizer (characters or BPE), and the
// optimizer state loaded into an AdamW for that model. Bad input must end in mg::Error.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "apps/common/checkpoint.h"
#include "apps/common/model_loading.h"
#include "apps/common/trainer.h"
#include "nn/optim/adamw.h"
#include "nn/optim/param_groups.h"
#include "ops/cpu/parallel.h"

namespace {
std::string scratch_file() {
  return (std::filesystem::temp_directory_path() / ("fuzz_checkpoint." + std::to_string(::getpid()))).string();
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  mg::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = scratch_file();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  try {
    mg::apps::LoadedCheckpoint checkpoint = mg::apps::load_checkpoint(path);
    mg::apps::LoadedModel loaded = mg::apps::load_model(checkpoint);  // the model and its tokenizer
    loaded.tokenizer->decode(loaded.tokenizer->encode(checkpoint.info.vocabulary));
    mg::optim::AdamW optimizer(mg::optim::weight_decay_groups(loaded.model->named_parameters(), 1e-3, 0.1));
    optimizer.load_state_dict(checkpoint.optimizer);
    mg::apps::TrainOptions options;
    options.restore_from_json(checkpoint.info.train_options);
    options.validate();
  } catch (const mg::Error&) {
  }
  return 0;
}
