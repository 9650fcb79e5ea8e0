#include "apps/common/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

#include "apps/common/checkpoint.h"
#include "apps/common/device_option.h"
#include "apps/common/loss_plot.h"
#include "apps/common/model_kinds.h"
#include "apps/common/model_loading.h"
#include "apps/common/text_dataset.h"
#include "apps/common/train_step.h"
#include "autograd/grad_mode.h"
#include "cuda/runtime.h"
#include "nn/atomic_file.h"
#include "tensor/json_integer.h"
#include "nn/lr_schedule.h"
#include "nn/optim/adamw.h"
#include "nn/optim/param_groups.h"
#include "nn/sha256.h"
#include "ops/indexing.h"

namespace mg::apps {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

void TrainOptions::validate() const {
  MG_CHECK(steps > 0, "train: --steps must be positive, got ", steps);
  MG_CHECK(time_budget_s >= 0, "train: --time-budget must be >= 0, got ", time_budget_s);
  MG_CHECK(batch > 0 && seq_len > 0, "train: --batch and --seq-len must be positive, got ", batch, " and ", seq_len);
  MG_CHECK(lr > 0 && std::isfinite(lr), "train: --lr must be positive, got ", lr);
  MG_CHECK(min_lr >= 0 && min_lr <= lr, "train: --min-lr must be in [0, lr], got ", min_lr);
  MG_CHECK(warmup >= 0, "train: --warmup must be >= 0, got ", warmup);
  MG_CHECK(weight_decay >= 0 && clip >= 0, "train: --weight-decay and --clip must be >= 0");
  MG_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "train: betas must be in [0, 1)");
  MG_CHECK(eval_every > 0 && eval_batches > 0 && save_every > 0 && log_every > 0,
           "train: --eval-every, --eval-batches, --save-every and --log-every must be positive");
  const auto& kinds = model_kinds();
  MG_CHECK(std::find(kinds.begin(), kinds.end(), model_kind) != kinds.end(), "train: unknown --model \"", model_kind,
           "\" (known: mamba, gpt)");
  MG_CHECK(init_from.empty() || model_kind == "mamba", "train: --init-from fine-tunes a Hugging Face Mamba directory; ",
           "it does not apply to --model ", model_kind);
  MG_CHECK(!tf32 || device.is_cuda(), "train: --tf32 applies to a GPU (--device cuda), not to ", device);
  MG_CHECK(model_kind != "gpt" || seq_len <= gpt.n_positions, "train: --seq-len ", seq_len,
           " exceeds the GPT's context window n_positions = ", gpt.n_positions, " (--n-positions)");
}

namespace {

// Every option that shapes a run, by its JSON name, once: read or written by `fn(name, value)`.
template <class Options, class Fn>
void for_each_run_option(Options& o, Fn&& fn) {
  fn("steps", o.steps);
  fn("batch", o.batch);
  fn("seq_len", o.seq_len);
  fn("lr", o.lr);
  fn("min_lr", o.min_lr);
  fn("warmup", o.warmup);
  fn("weight_decay", o.weight_decay);
  fn("beta1", o.beta1);
  fn("beta2", o.beta2);
  fn("clip", o.clip);
  fn("seed", o.seed);
  fn("eval_every", o.eval_every);
  fn("eval_batches", o.eval_batches);
  fn("save_every", o.save_every);
  fn("log_every", o.log_every);
  fn("data", o.data);
}

}  // namespace

std::string TrainOptions::to_json() const {
  json j = json::object();
  for_each_run_option(*this, [&](const char* name, const auto& value) { j[name] = value; });
  j["data_sha256"] = data_sha256;
  return j.dump();
}

std::vector<std::string> TrainOptions::restore_from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  MG_CHECK(j.is_object(), "train: the checkpoint's train_options are not a JSON object");
  std::vector<std::string> changed;
  // A checkpoint written before an option was recorded lacks it: that option keeps its value here.
  for_each_run_option(*this, [&](const char* name, auto& value) {
    if (!j.contains(name)) return;
    using Option = std::decay_t<decltype(value)>;
    Option stored{};
    const json& v = j.at(name);
    // Integer options take JSON integers of their type's range only (nlohmann would cast 1e300
    // to int64 as C++ does, which is undefined behaviour).
    if constexpr (std::is_integral_v<Option>)
      MG_CHECK(!v.is_number() || json_integer_fits<Option>(v), "train: the checkpoint's train_options.", name,
               " must be an integer in range, got ", v.dump());
    try {
      v.get_to(stored);
    } catch (const json::exception&) {
      throw Error(str("train: the checkpoint's train_options.", name, " has the wrong type (", j.at(name).dump(), ")"));
    }
    if (!given.contains(name)) value = stored;
    else if (value != stored) changed.push_back(str(name, " ", json(stored).dump(), " -> ", json(value).dump()));
  });
  data_sha256 = j.value("data_sha256", std::string());
  return changed;
}

namespace {

std::string duration(double seconds) {
  int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, s / 60 % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lds", s);
  return buf;
}

// The values of 0-d tensors on one device, read to the host in one copy (one wait for the device).
std::vector<double> read_scalars(const TensorList& scalars) {
  TensorList rows;
  for (const Tensor& s : scalars) rows.push_back(s.reshape({1}));
  return concat(rows, 0).to_vector<double>();
}

double evaluate(LanguageModel& model, const std::vector<int64_t>& ids, const TrainOptions& o) {
  NoGradGuard no_grad;
  model.eval();  // no dropout
  TensorList losses;  // on the device until all are queued
  for (int64_t i = 0; i < o.eval_batches; ++i) {
    Batch b = fixed_batch(ids, o.batch, o.seq_len, i, o.eval_batches);
    losses.push_back(model.loss(b.inputs.to(o.device), b.targets.to(o.device)));
  }
  model.train();
  double total = 0;
  for (double loss : read_scalars(losses)) total += loss;
  return total / static_cast<double>(o.eval_batches);
}

// Keeps the metrics lines a resumed run does not rewrite: those before the checkpoint's `step`,
// and those at it that the run writes on its cadence anyway; an interrupted run's last lines (off
// the cadence, at its stop) and anything after the checkpoint go.
void truncate_metrics(const fs::path& path, int64_t step, const TrainOptions& o) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    const int64_t s = j.value("step", int64_t{0});
    const bool on_cadence = j.contains("val_loss") ? s % o.eval_every == 0 : s % o.log_every == 0;
    if (s < step || (s == step && on_cadence)) kept += line + "\n";
  }
  nn::write_file_atomically(path.string(), kept);
}

void write_loss_plot(const fs::path& metrics, const fs::path& svg, const std::string& title) {
  Series train{"train loss", "#1f77b4", {}}, val{"val loss", "#d62728", {}};
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    double step = j.value("step", 0.0);
    // A non-finite loss is written as null (JSON has no NaN): no point for it.
    if (j.contains("train_loss") && j["train_loss"].is_number()) train.points.emplace_back(step, j["train_loss"].get<double>());
    if (j.contains("val_loss") && j["val_loss"].is_number()) val.points.emplace_back(step, j["val_loss"].get<double>());
  }
  nn::write_file_atomically(svg.string(), loss_curve_svg({train, val}, title));
}

}  // namespace

namespace {

// A run about to start: its options (on resume: the checkpoint's, with the given ones on top) and
// the checkpoint it continues.
struct RunStart {
  TrainOptions options;
  std::optional<LoadedCheckpoint> resumed;
};

RunStart prepare_run(const TrainOptions& requested) {
  requested.validate();
  RunStart run{requested, std::nullopt};
  if (requested.resume.empty()) return run;
  run.resumed = load_checkpoint(requested.resume);
  TrainOptions& o = run.options;
  std::vector<std::string> changed = o.restore_from_json(run.resumed->info.train_options);
  o.model_kind = run.resumed->info.model_kind;  // the checkpoint's model, whatever --model says
  if (o.model_kind == "gpt") o.gpt = gpt::GPTConfig::from_json(run.resumed->info.config);
  o.validate();
  const int64_t done = run.resumed->info.step;
  MG_CHECK(o.steps > done, "train: the checkpoint ", requested.resume, " is already at step ", done, " of ", o.steps,
           "; give --steps N with N > ", done, " to train on");
  if (o.progress) {
    std::string note;
    for (const std::string& c : changed) {
      note += (note.empty() ? " (given again: " : ", ") + c;
      if (c.rfind("steps ", 0) == 0) note += str(": the learning-rate schedule now ends at step ", o.steps);
    }
    if (!note.empty()) note += ")";
    std::fprintf(stderr, "train: resuming %s at step %ld of %ld%s\n", requested.resume.c_str(), static_cast<long>(done),
                 static_cast<long>(o.steps), note.c_str());
  }
  return run;
}

// The text a run trains on must be the one its checkpoint was trained on, unless the user gave
// --data again on purpose.
void check_same_text(const RunStart& run, const std::string& text_sha256) {
  const TrainOptions& o = run.options;
  if (!run.resumed || o.data_sha256.empty() || o.data_sha256 == text_sha256) return;
  MG_CHECK(o.given.contains("data"), "train: the training text", o.data.empty() ? "" : " " + o.data,
           " is not the one the checkpoint was trained on (its SHA-256 differs); give --data with the original text, "
           "or give --data explicitly to continue on a new one");
  if (o.progress) std::fprintf(stderr, "train: note: %s is not the text trained on so far\n", o.data.c_str());
}

TrainResult run_training(RunStart& run, const std::string& text) {
  const std::string text_sha256 = nn::sha256_hex(text);
  check_same_text(run, text_sha256);
  TrainOptions& options = run.options;
  options.data_sha256 = text_sha256;
  LoadedCheckpoint resumed = run.resumed ? std::move(*run.resumed) : LoadedCheckpoint{};
  // TF32 for this run only: the setting is the process's (a test may train several models).
  struct Tf32Scope {
    bool on, before = false;
    explicit Tf32Scope(bool turn_on) : on(turn_on) {
      if (!on) return;
      before = cuda::allow_tf32();
      cuda::set_allow_tf32(true);
    }
    ~Tf32Scope() {
      if (on) cuda::set_allow_tf32(before);
    }
  } tf32(options.tf32);
  fs::create_directories(options.out_dir);
  const fs::path out(options.out_dir);
  TrainResult result;
  result.checkpoint_path = (out / "checkpoint.safetensors").string();

  // Model, tokenizer and sampler: fresh, pretrained, or exactly as the checkpoint left them.
  std::shared_ptr<LanguageModel> model;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::string vocabulary, tokenizer_json;  // what the checkpoints store of the tokenizer
  Generator batch_gen(options.seed ^ 0x5DEECE66Dull);
  optim::AdamWOptions adam{.beta1 = options.beta1, .beta2 = options.beta2, .eps = 1e-8};
  if (!options.resume.empty()) {
    LoadedModel loaded = load_model(resumed);
    model = loaded.model;
    tokenizer = std::move(loaded.tokenizer);
    vocabulary = resumed.info.vocabulary, tokenizer_json = loaded.tokenizer_json;
    batch_gen.set_state(resumed.info.rng_state);
    if (resumed.info.model_rng_state && model->training_generator() != nullptr)
      model->training_generator()->set_state(*resumed.info.model_rng_state);
    result.first_step = resumed.info.step;
  } else if (!options.init_from.empty()) {
    LoadedModel pretrained = load_model(options.init_from, "");
    model = pretrained.model;
    tokenizer = std::move(pretrained.tokenizer);
    tokenizer_json = pretrained.tokenizer_json;
  } else {
    auto chars = std::make_unique<CharTokenizer>(CharTokenizer::from_text(text));
    vocabulary = chars->vocabulary();
    std::string config;
    if (options.model_kind == "gpt") {
      gpt::GPTConfig c = options.gpt;
      c.vocab_size = chars->size();
      config = c.to_json();
    } else {
      mamba::MambaConfig c = options.model;
      c.vocab_size = chars->size();
      config = c.to_json();
    }
    tokenizer = std::move(chars);
    Generator init_gen(options.seed);
    model = make_model(options.model_kind, config, init_gen);
  }
  TextSplits data = split_90_10(tokenizer->encode(text));
  model->to(options.device);  // before the optimizer, whose state lives on its parameters' device
  if (options.device.is_cuda()) cuda::reset_peak_memory_stats(options.device.index);
  optim::AdamW optimizer(optim::weight_decay_groups(model->named_parameters(), options.lr, options.weight_decay), adam);
  if (!options.resume.empty()) {
    optimizer.load_state_dict(resumed.optimizer);
    truncate_metrics(out / "metrics.jsonl", result.first_step, options);
  } else {
    std::remove((out / "metrics.jsonl").c_str());
  }
  // A run shorter than the warmup warms up over the whole run.
  nn::WarmupCosineSchedule schedule{options.lr, options.min_lr, std::min(options.warmup, options.steps), options.steps};
  TensorList params = model->parameters();
  std::ofstream metrics(out / "metrics.jsonl", std::ios::app);

  double window_loss = 0;  // the training losses since the last metrics line
  int64_t window_steps = 0;
  if (!resumed.info.run_state.empty()) {
    json state = json::parse(resumed.info.run_state, nullptr, false);
    MG_CHECK(state.is_object() && state.value("loss_window_steps", int64_t{-1}) >= 0, "train: the checkpoint ",
             options.resume, " has a malformed run_state: ", resumed.info.run_state);
    window_loss = state.value("loss_window_sum", 0.0);
    window_steps = state.value("loss_window_steps", int64_t{0});
  }
  const bool tty = ::isatty(STDERR_FILENO);
  auto save = [&](int64_t step) {
    CheckpointInfo info;  // the model's kind and config are taken from the model
    info.vocabulary = vocabulary, info.tokenizer_json = tokenizer_json;
    info.step = step, info.rng_state = batch_gen.state(), info.train_options = options.to_json();
    if (Generator* g = model->training_generator()) info.model_rng_state = g->state();
    // The metrics window in progress: a resumed run's next metrics line averages the same steps.
    info.run_state = json{{"loss_window_sum", window_loss}, {"loss_window_steps", window_steps}}.dump();
    try {
      save_checkpoint(result.checkpoint_path, *model, &optimizer, info);
    } catch (const Error& e) {
      if (options.progress && tty) std::fprintf(stderr, "\n");
      throw Error(str("train: the checkpoint of step ", step, " was not saved: ", e.what()));
    }
  };
  const auto start = Clock::now();
  int64_t step = result.first_step;
  // Each step's loss stays on the device (0-d) until a value is needed: reading it every step
  // would make the host wait for the GPU every step. Read together, checked in step order.
  TensorList unread;  // the losses of steps step - unread.size() + 1 .. step
  auto read_losses = [&] {
    if (unread.empty()) return;
    const std::vector<double> values = read_scalars(unread);  // the host waits for the device here
    for (size_t i = 0; i < values.size(); ++i) {
      if (!std::isfinite(values[i])) {
        if (options.progress && tty) std::fprintf(stderr, "\n");
        throw Error(str("train: the loss became ", values[i], " at step ", step - static_cast<int64_t>(values.size() - i) + 1,
                        "; stopping. The last checkpoint (",
                        fs::exists(result.checkpoint_path) ? result.checkpoint_path : std::string("none written yet"),
                        ") is left as it was"));
      }
      result.losses.push_back(values[i]);
      window_loss += values[i];
      ++window_steps;
    }
    unread.clear();
  };
  if (options.progress)
    std::fprintf(stderr, "train: %s, %ld parameters, %zu train / %zu val tokens, %ld steps of %ld x %ld tokens, on %s\n",
                 model->kind().c_str(), static_cast<long>(model->num_parameters()), data.train.size(), data.val.size(),
                 static_cast<long>(options.steps), static_cast<long>(options.batch), static_cast<long>(options.seq_len),
                 options.device.str().c_str());
  while (step < options.steps) {
    double lr = schedule.lr(step);
    optimizer.set_lr(lr);
    Batch batch = random_batch(data.train, options.batch, options.seq_len, batch_gen);
    // On the CPU the two halves of the batch run side by side (apps/common/train_step.h).
    auto [loss, grad_norm] = train_step(*model, optimizer, params, batch.inputs.to(options.device),
                                        batch.targets.to(options.device), options.clip);
    ++step;
    unread.push_back(loss);

    bool out_of_time = options.time_budget_s > 0 && std::chrono::duration<double>(Clock::now() - start).count() >=
                                                        options.time_budget_s;
    bool last = step == options.steps || out_of_time;
    bool log = step % options.log_every == 0 || last, evaluating = step % options.eval_every == 0 || last;
    bool saving = step % options.save_every == 0 || last;
    if (log || evaluating || saving) read_losses();  // before a checkpoint: a NaN never gets saved
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    double tokens = static_cast<double>((step - result.first_step) * options.batch * options.seq_len);
    result.tokens_per_second = tokens / std::max(elapsed, 1e-9);
    if (log) {
      json line{{"step", step}, {"train_loss", window_loss / window_steps}, {"lr", lr}, {"grad_norm", grad_norm.item<double>()},
                {"tokens_per_second", result.tokens_per_second}, {"elapsed_s", elapsed}};
      if (options.device.is_cuda())
        line["gpu_peak_bytes"] = cuda::memory_stats(options.device.index).peak_allocated_bytes;
      metrics << line.dump() << "\n" << std::flush;
      if (options.progress) {
        double eta = elapsed / static_cast<double>(step - result.first_step) * static_cast<double>(options.steps - step);
        const std::string memory = device_memory_note(options.device);
        std::fprintf(stderr, "%sstep %ld/%ld | loss %.4f | lr %.2e | %.1fk tok/s | %s%s%s elapsed | ETA %s%s",
                     tty ? "\r\033[K" : "", static_cast<long>(step), static_cast<long>(options.steps),
                     window_loss / window_steps, lr, result.tokens_per_second / 1000, memory.c_str(),
                     memory.empty() ? "" : " | ", duration(elapsed).c_str(), duration(eta).c_str(), tty ? "" : "\n");
      }
      if (step % options.log_every == 0) {  // (a run's off-cadence last line leaves the window to a resume)
        window_loss = 0;
        window_steps = 0;
      }
    }
    if (evaluating) {
      result.val_loss = evaluate(*model, data.val, options);
      const double eval_elapsed = std::chrono::duration<double>(Clock::now() - start).count();
      metrics << json{{"step", step}, {"val_loss", result.val_loss}, {"elapsed_s", eval_elapsed}}.dump() << "\n"
              << std::flush;
      if (options.progress) std::fprintf(stderr, "%sstep %ld: val loss %.4f\n", tty ? "\n" : "", static_cast<long>(step), result.val_loss);
    }
    if (saving) save(step);
    if (out_of_time) {
      result.stopped_by_time_budget = step < options.steps;
      break;
    }
  }
  result.last_step = step;
  metrics.close();
  write_loss_plot(out / "metrics.jsonl", out / "loss.svg",
                  (model->kind() == "gpt" ? std::string("GPT") : std::string("Mamba")) + " on TinyShakespeare");
  if (options.progress) {
    std::string stop = result.stopped_by_time_budget
                           ? str("stopped by the time budget at step ", step, " of ", options.steps,
                                 " (`mambagrad train --resume --out ", options.out_dir, "` continues it)")
                           : str("done at step ", step);
    std::fprintf(stderr, "train: %s, val loss %.4f, %.1fk tokens/s; wrote %s, %s, %s\n", stop.c_str(), result.val_loss,
                 result.tokens_per_second / 1000, result.checkpoint_path.c_str(), (out / "metrics.jsonl").c_str(),
                 (out / "loss.svg").c_str());
  }
  return result;
}

}  // namespace

TrainResult train(const TrainOptions& options, const std::string& text) {
  RunStart run = prepare_run(options);
  return run_training(run, text);
}

TrainResult train(const TrainOptions& options) {
  RunStart run = prepare_run(options);
  TrainOptions& o = run.options;
  // On resume the recorded path, unless that file is gone (then the corpus is looked up anew).
  if (run.resumed && !o.given.contains("data") && !o.data.empty() && !fs::is_regular_file(o.data)) {
    if (o.progress) std::fprintf(stderr, "train: %s (the checkpoint's data) is gone; looking for the corpus\n", o.data.c_str());
    o.data.clear();
  }
  o.data = fs::absolute(find_tinyshakespeare(o.data)).lexically_normal().string();
  std::string text = read_text_file(o.data);
  if (o.progress) std::fprintf(stderr, "train: data %s (%zu bytes)\n", o.data.c_str(), text.size());
  return run_training(run, text);
}

}  // namespace mg::apps
