// `mambagrad export --hf DIR`: a checkpoint as a Hugging Face model directory (config.json,
// model.safetensors, tokenizer.json) that transformers' MambaForCausalLM.from_pretrained and
// the tokenizers library load, and that `mambagrad generate --model DIR` runs.
#include "apps/export.h"

#include <cstdio>
#include <filesystem>
#include <memory>

#include "apps/common/checkpoint.h"
#include "models/mamba/pretrained.h"
#include "nn/atomic_file.h"
#include "text/bpe_tokenizer.h"

namespace mg::apps {

void add_export_command(CLI::App& app) {
  struct Flags {
    std::string checkpoint = "out/checkpoint.safetensors";
    std::string hf_dir;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("export", "Write a checkpoint as a Hugging Face model directory");
  cmd->add_option("--checkpoint", flags->checkpoint, "Checkpoint written by `mambagrad train`")->capture_default_str();
  cmd->add_option("--hf", flags->hf_dir, "Directory to write (new or empty): config.json, model.safetensors, tokenizer.json")
      ->required();
  cmd->callback([flags] {
    LoadedCheckpoint checkpoint = load_checkpoint(flags->checkpoint);
    std::shared_ptr<LanguageModel> model = model_from_checkpoint(checkpoint);
    const auto* mamba_model = dynamic_cast<const mamba::MambaLM*>(model.get());
    MG_CHECK(mamba_model != nullptr, "export: ", flags->checkpoint, " holds a ", model->kind(),
             " model; --hf writes Mamba models (MambaForCausalLM) only");
    std::string tokenizer_json = checkpoint.info.tokenizer_json;
    std::optional<int64_t> eos;
    if (tokenizer_json.empty()) {
      tokenizer_json = CharTokenizer::from_vocabulary(checkpoint.info.vocabulary).to_tokenizer_json();
    } else {
      eos = text::BpeTokenizer::from_json(tokenizer_json, "in the checkpoint").token_id("<|endoftext|>");
    }
    // A character model has no end-of-text token: null ids keep transformers from assuming 0.
    mamba::save_pretrained(*mamba_model, flags->hf_dir, eos, eos, eos);
    nn::write_file_atomically((std::filesystem::path(flags->hf_dir) / "tokenizer.json").string(), tokenizer_json);
    std::printf("export: wrote %s (config.json, model.safetensors, tokenizer.json) from %s\n", flags->hf_dir.c_str(),
                flags->checkpoint.c_str());
  });
}

}  // namespace mg::apps
