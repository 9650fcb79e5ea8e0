// `mambagrad train`: the command-line face of apps/common/trainer.h.
#include "apps/train.h"

#include "apps/cli_checks.h"

#include <algorithm>
#include <memory>
#include <vector>

#include "apps/common/device_option.h"
#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "ops/cpu/parallel.h"
#include "tensor/error.h"

namespace mg::apps {

void add_train_command(CLI::App& app) {
  struct Flags {
    TrainOptions options;
    std::string config;
    int64_t d_model = 0, n_layer = 0;  // 0: the kind's default
    int threads = 0;
    bool resume = false;
    std::string resume_from;
    std::string device = "cpu";
  };
  auto flags = std::make_shared<Flags>();
  TrainOptions& o = flags->options;
  CLI::App* cmd = app.add_subcommand(
      "train", "Train a character language model (Mamba or GPT) on TinyShakespeare, or fine-tune a pretrained Mamba");
  cmd->add_option("--model", o.model_kind, "Model kind: mamba (the standard 474,880-parameter config) or gpt "
                                           "(GPT-2 style, 477,792 parameters by default)")
      ->capture_default_str()->check(CLI::IsMember({"mamba", "gpt"}));
  cmd->add_option("--data", o.data,
                  "Training text (default: tinyshakespeare.txt from $MG_DATA_DIR, else ./data/ or the checkout's "
                  "data/, else downloaded and verified)");
  std::vector<CLI::Option*> shape;  // the flags that shape a new model (none applies to --init-from)
  shape.push_back(cmd->add_option("--config", flags->config, "Model config JSON (MambaConfig or GPTConfig fields, by --model; flags below override)")
      ->check(CLI::ExistingFile));
  shape.push_back(cmd->add_option("--d-model", flags->d_model, "Model width (default: mamba 128, gpt 112)")->check(kPositive));
  shape.push_back(cmd->add_option("--n-layer", flags->n_layer, "Number of blocks (default: mamba 4, gpt 3)")->check(kPositive));
  shape.push_back(cmd->add_option("--d-state", o.model.d_state, "Mamba: SSM state size N")->capture_default_str()
                      ->check(kPositive));
  shape.push_back(cmd->add_option("--n-head", o.gpt.n_head, "GPT: attention heads")->capture_default_str()->check(kPositive));
  shape.push_back(cmd->add_option("--n-positions", o.gpt.n_positions, "GPT: context window (default: --seq-len)")
                      ->check(kPositive));
  shape.push_back(cmd->add_option("--dropout", o.gpt.dropout, "GPT: dropout on embeddings and residual branches")
                      ->capture_default_str()->check(CLI::Range(0.0, 0.99)));
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
  cmd->add_option("--device", flags->device, "Where to train: cpu, cuda (GPU 0) or cuda:N")->capture_default_str();
  cmd->add_flag("--tf32", o.tf32, "GPU: float32 matmuls on TF32 tensor cores (faster; ~1e-3 relative error in "
                                  "products; off by default)");
  cmd->add_flag("--resume", flags->resume,
                "Continue from <out>/checkpoint.safetensors: the same run (its model, steps, schedule, batches, seed, "
                "data); flags given again override those");
  cmd->add_option("--resume-from", flags->resume_from, "Continue from this checkpoint, as --resume")
      ->check(CLI::ExistingFile);
  CLI::Option* init_from = cmd->add_option("--init-from", o.init_from,
                                           "Fine-tune a pretrained Hugging Face Mamba directory (its config, weights "
                                           "and tokenizer.json; the model-shape flags do not apply)")
                               ->check(CLI::ExistingDirectory);
  shape.push_back(init_from);
  for (CLI::Option* option : shape)
    if (option != init_from) init_from->excludes(option);
  cmd->callback([flags, cmd, shape] {
    TrainOptions options = flags->options;
    if (flags->threads > 0) set_num_threads(flags->threads);
    if (flags->resume) options.resume = options.out_dir + "/checkpoint.safetensors";
    if (!flags->resume_from.empty()) options.resume = flags->resume_from;
    // A resumed run's model is the checkpoint's, so the flags that shape a model cannot be given.
    for (const CLI::Option* option : shape)
      MG_CHECK(options.resume.empty() || option->count() == 0, "train: ", option->get_name(),
               " cannot be given with --resume: the model is the checkpoint's");
    if (!flags->config.empty()) {
      // Flags given explicitly on the command line win over the file.
      if (options.model_kind == "gpt") {
        std::string text = read_text_file(flags->config);
        gpt::GPTConfig from_file = gpt::GPTConfig::from_json(text);
        if (cmd->count("--n-head") == 0) options.gpt.n_head = from_file.n_head;
        if (cmd->count("--n-positions") == 0) options.gpt.n_positions = from_file.n_positions;
        if (cmd->count("--dropout") == 0) options.gpt.dropout = from_file.dropout;
        options.gpt.n_embd = from_file.n_embd, options.gpt.n_layer = from_file.n_layer;
        options.gpt.layer_norm_epsilon = from_file.layer_norm_epsilon;
      } else {
        options.model = mamba::MambaConfig::load(flags->config);
        if (cmd->count("--d-state")) options.model.d_state = flags->options.model.d_state;
      }
    }
    if (flags->d_model > 0) options.model.d_model = options.gpt.n_embd = flags->d_model;
    if (flags->n_layer > 0) options.model.n_layer = options.gpt.n_layer = flags->n_layer;
    if (cmd->count("--n-positions") == 0 && flags->config.empty()) options.gpt.n_positions = options.seq_len;
    // The flags on the command line ("--seq-len" -> "seq_len"): on resume, these override the
    // checkpoint's options; the others are restored from it.
    for (const CLI::Option* option : cmd->get_options()) {
      if (option->count() == 0 || option->get_lnames().empty()) continue;
      std::string name = option->get_lnames().front();
      std::replace(name.begin(), name.end(), '-', '_');
      options.given.insert(name);
    }
    options.device = device_from_flag(flags->device);
    options.validate();  // bad flags fail before the data is looked for
    if (options.model_kind == "gpt" && options.resume.empty()) options.gpt.validate();
    train(options);
  });
}

}  // namespace mg::apps
