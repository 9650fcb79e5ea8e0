// `mambagrad train`: the command-line face of apps/common/trainer.h.
#include "apps/train.h"

#include "apps/cli_checks.h"

#include <memory>

#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "ops/cpu/parallel.h"

namespace mg::apps {

void add_train_command(CLI::App& app) {
  struct Flags {
    TrainOptions options;
    std::string data, config;
    int threads = 0;
    bool resume = false;
    std::string resume_from;
  };
  auto flags = std::make_shared<Flags>();
  TrainOptions& o = flags->options;
  CLI::App* cmd = app.add_subcommand("train", "Train a Mamba character model on TinyShakespeare, or fine-tune a pretrained one");
  cmd->add_option("--data", flags->data,
                  "Training text (default: tinyshakespeare.txt from $MG_DATA_DIR, data/, ../shared/data/, "
                  "else downloaded)");
  cmd->add_option("--config", flags->config, "Model config JSON (MambaConfig fields; flags below override)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--d-model", o.model.d_model, "Model width")->capture_default_str()->check(kPositive);
  cmd->add_option("--n-layer", o.model.n_layer, "Number of Mamba blocks")->capture_default_str()->check(kPositive);
  cmd->add_option("--d-state", o.model.d_state, "SSM state size N")->capture_default_str()->check(kPositive);
  cmd->add_option("--steps", o.steps, "Optimizer steps (the LR schedule's length)")->capture_default_str()->check(kPositive);
  cmd->add_option("--time-budget", o.time_budget_s, "Stop after this many seconds (0 = no limit), saving a checkpoint")
      ->capture_default_str()->check(kNonNegative);
  cmd->add_option("--batch", o.batch, "Sequences per step")->capture_default_str()->check(kPositive);
  cmd->add_option("--seq-len", o.seq_len, "Tokens per sequence")->capture_default_str()->check(kPositive);
  cmd->add_option("--lr", o.lr, "Peak learning rate (AdamW)")->capture_default_str()->check(kPositive);
  cmd->add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine decay")->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--warmup", o.warmup, "Linear warmup steps")->capture_default_str()->check(kNonNegative);
  cmd->add_option("--weight-decay", o.weight_decay, "AdamW weight decay (not on biases, norms, A_log, D)")
      ->capture_default_str()->check(kNonNegative);
  cmd->add_option("--clip", o.clip, "Clip the global gradient norm (0 = off)")->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--seed", o.seed, "Random seed (initialization and batches)")->capture_default_str();
  cmd->add_option("--out", o.out_dir, "Output directory (checkpoint, metrics.jsonl, loss.svg)")->capture_default_str();
  cmd->add_option("--eval-every", o.eval_every, "Steps between validation losses")->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--eval-batches", o.eval_batches, "Batches per validation loss")->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--save-every", o.save_every, "Steps between checkpoints")->capture_default_str()->check(kPositive);
  cmd->add_option("--log-every", o.log_every, "Steps between progress lines")->capture_default_str()->check(kPositive);
  cmd->add_option("--threads", flags->threads, "CPU threads (default: OMP_NUM_THREADS or all cores)")
      ->check(kPositive);
  cmd->add_flag("--resume", flags->resume, "Continue from <out>/checkpoint.safetensors");
  cmd->add_option("--resume-from", flags->resume_from, "Continue from this checkpoint")->check(CLI::ExistingFile);
  cmd->add_option("--init-from", o.init_from,
                  "Fine-tune a pretrained Hugging Face model directory (its config, weights and tokenizer.json; the "
                  "model-shape flags do not apply)")
      ->check(CLI::ExistingDirectory);
  cmd->callback([flags] {
    TrainOptions options = flags->options;
    if (flags->threads > 0) set_num_threads(flags->threads);
    if (!flags->config.empty()) {
      mamba::MambaConfig from_file = mamba::MambaConfig::load(flags->config);
      // Flags given explicitly on the command line win over the file.
      if (options.model.d_model == mamba::MambaConfig{}.d_model) options.model = from_file;
    }
    if (flags->resume) options.resume = options.out_dir + "/checkpoint.safetensors";
    if (!flags->resume_from.empty()) options.resume = flags->resume_from;
    std::string path = find_tinyshakespeare(flags->data);
    std::string text = read_text_file(path);
    std::fprintf(stderr, "train: data %s (%zu bytes)\n", path.c_str(), text.size());
    train(options, text);
  });
}

}  // namespace mg::apps
