#pragma once
// Training a language model on a text: a character model (Mamba or GPT) from scratch, or a
// pretrained Mamba fine-tuned with its own tokenizer. The loop behind `mambagrad train`, as a
// function, so tests can run it on a tiny model (and check that a resumed run repeats an unbroken
// one). One loop for every model kind: it sees models/language_model.h.
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "models/gpt/config.h"
#include "models/mamba/config.h"
#include "tensor/device.h"

namespace mg::apps {

struct TrainOptions {
  std::string model_kind = "mamba";  // "mamba" or "gpt" (apps/common/model_kinds.h)
  mamba::MambaConfig model;  // the Mamba's config; vocab_size is set from the text
  gpt::GPTConfig gpt;        // the GPT's config; vocab_size is set from the text
  int64_t steps = 2000;      // optimizer updates in the whole run (the schedule's length)
  double time_budget_s = 0;  // > 0: stop (with a checkpoint) once this much time has passed
  int64_t batch = 32;
  int64_t seq_len = 128;
  double lr = 2e-3, min_lr = 2e-4;
  int64_t warmup = 100;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95;
  double clip = 1.0;  // global gradient-norm clip; 0 = off
  uint64_t seed = 0;
  std::string out_dir = "out";
  int64_t eval_every = 250, eval_batches = 20, save_every = 500, log_every = 10;
  std::string data;         // the training text's path ("" = find tinyshakespeare.txt); train(options) reads it
  std::string data_sha256;  // of the text trained on: set by train(), checked when resuming
  std::string resume;       // a checkpoint to continue from ("" = start fresh)
  // A pretrained Hugging Face model directory to fine-tune ("" = a character model from scratch):
  // its weights start the run, its tokenizer.json encodes the text, and `model` is not used
  // (model_kind must be "mamba").
  std::string init_from;
  // On resume, every option that shapes the run comes from the checkpoint (the schedule and its
  // length, batches, AdamW, clip, seed, the eval/log/save cadence, the data; the model's kind and
  // config), except those named here by their JSON names ("steps", "seq_len", ...): the ones the
  // user gave again.
  std::set<std::string> given;
  bool progress = true;  // the live progress line on stderr
  // Where the model trains (--device). Checkpoints are the same files on every device: a run may
  // resume, or its checkpoint generate, on another one (bit-identical continuation needs the same).
  Device device = Device::cpu();
  bool tf32 = false;  // --tf32: float32 matmuls on the GPU's TF32 tensor cores (cuda/runtime.h)

  void validate() const;  // throws mg::Error naming the option
  // The options that shape the run, as stored in a checkpoint (JSON names = flag names with '_').
  std::string to_json() const;
  // Takes every option stored in `json` except those in `given`; returns "name old -> new" for
  // each given option whose value differs from the stored one (for the progress line).
  std::vector<std::string> restore_from_json(const std::string& json);
};

struct TrainResult {
  std::vector<double> losses;  // the training loss of every step this run took (after resuming)
  int64_t first_step = 0;      // the step the run started at (0, or the checkpoint's step)
  int64_t last_step = 0;       // updates done when the run ended
  double val_loss = 0;         // at the end
  double tokens_per_second = 0;
  bool stopped_by_time_budget = false;
  std::string checkpoint_path;
};

// Trains on the text at options.data (or TinyShakespeare, found by find_tinyshakespeare). On
// resume without a data path given, reads the file the checkpoint recorded and checks that it is
// the same text (its SHA-256); where that file is gone, finds the corpus anew.
TrainResult train(const TrainOptions& options);

// Trains on `text` (split 90/10 into train/val). Writes into out_dir: checkpoint.safetensors
// (every save_every steps and at the end), metrics.jsonl (a line per log_every steps and per
// evaluation), loss.svg (at the end). Throws mg::Error when the loss turns NaN or Inf, naming the
// step; the last checkpoint written stays as it was. The host does not wait for each step (on a
// GPU, the device runs behind it): the losses stay where they were computed and are read (and
// checked) together at every progress line, evaluation and checkpoint.
TrainResult train(const TrainOptions& options, const std::string& text);

}  // namespace mg::apps
