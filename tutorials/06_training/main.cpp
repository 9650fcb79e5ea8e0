// Lesson 6: training a small Mamba language model on TinyShakespeare, the loop written out with
// the library's pieces (data, model, loss, backward, clip, AdamW, warmup + cosine schedule).
// What `mambagrad train` does (apps/common/trainer.cpp), minus checkpoints and logging.
#include <mambagrad.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "apps/common/char_tokenizer.h"
#include "apps/common/loss_plot.h"
#include "apps/common/sampling.h"
#include "apps/common/text_dataset.h"
#include "models/mamba/model.h"
#include "nn/nn.h"
#include "ops/cpu/parallel.h"

using namespace mg;

namespace {
bool g_failed = false;
void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) std::printf("FAIL: %s\n", what.c_str()), g_failed = true;
}

// The training recipe of this lesson: small enough for a minute on two cores.
constexpr int64_t kSteps = 300, kPrintEvery = 100, kValEvery = 20, kWarmup = 30, kBatch = 16, kSeqLen = 64;
constexpr int64_t kSampleLength = 100;
constexpr double kPeakLr = 4e-3, kMinLr = 4e-4, kWeightDecay = 0.1, kClip = 1.0;

// Mean loss over a fixed set of validation windows (the same ones every time), without a graph.
double val_loss(mamba::MambaLM& model, const std::vector<int64_t>& val) {
  NoGradGuard no_grad;
  double total = 0;
  const int64_t batches = 4;
  for (int64_t i = 0; i < batches; ++i) {
    apps::Batch b = apps::fixed_batch(val, 16, kSeqLen, i, batches);
    total += model.loss(b.inputs, b.targets).item<double>();
  }
  return total / batches;
}

// Continues `prompt` by `count` characters: the prompt in one parallel forward, then one recurrent
// step per character (lesson 7), each drawn at temperature 0.8 from a generator seeded alike.
std::string sample(mamba::MambaLM& model, const apps::CharTokenizer& tok, const std::string& prompt, int64_t count) {
  NoGradGuard no_grad;
  std::vector<int64_t> ids = tok.encode(prompt);
  mamba::InferenceState state;
  Tensor logits = model.forward(from_vector(ids, {1, (int64_t)ids.size()}), &state);  // (1, L, V)
  std::vector<float> last = narrow(logits, 1, ids.size() - 1, 1).reshape({-1}).to_vector<float>();
  Generator gen(1234);
  std::string out;
  for (int64_t i = 0; i < count; ++i) {
    int64_t next = apps::sample_token(last, {.temperature = 0.8}, gen);
    out += tok.decode(next);
    last = model.step(tensor({next}), state).reshape({-1}).to_vector<float>();
  }
  return out;
}

void print_sample(int64_t step, const std::string& text) {
  std::printf("  sample at step %ld:\n    | ", (long)step);
  for (char c : text) c == '\n' ? std::printf("\n    | ") : std::printf("%c", c);
  std::printf("\n");
}
}  // namespace

int lesson() {
  // A model this small does too little work per op to share it between threads: handing each op
  // to a second thread costs more than it saves (and much more when other programs compete for
  // the cores). `mambagrad train` uses every core; its models are wider.
  set_num_threads(1);
  std::printf("1. Data\n");
  std::string text = apps::read_text_file(apps::find_tinyshakespeare(""));
  apps::CharTokenizer tok = apps::CharTokenizer::from_text(text);
  std::vector<int64_t> ids = tok.encode(text);
  apps::TextSplits data = apps::split_90_10(ids);
  std::printf("  %zu characters, vocabulary of %ld: %s\n", text.size(), (long)tok.size(),
              tok.vocabulary().substr(13).c_str());  // (the first 13 are '\n', ' ' and punctuation)
  std::printf("  \"First Citizen\" -> ");
  for (int64_t id : tok.encode("First Citizen")) std::printf("%ld ", (long)id);
  std::printf("\n  train %zu tokens, val %zu tokens\n", data.train.size(), data.val.size());
  check(tok.size() == 65, "65 distinct characters");
  check(tok.decode(tok.encode(text.substr(0, 1000))) == text.substr(0, 1000), "decode(encode(s)) == s");
  check(data.train.size() + data.val.size() == ids.size() && data.train.size() == ids.size() * 9 / 10,
        "the first 90% train, the last 10% validation");
  Generator batch_gen(7);
  apps::Batch peek = apps::random_batch(data.train, 2, 8, batch_gen);
  std::vector<int64_t> in = peek.inputs.to_vector<int64_t>(), tg = peek.targets.to_vector<int64_t>();
  std::printf("  a batch: inputs %s  \"%s\" -> targets \"%s\"\n", str(peek.inputs.shape()).c_str(),
              tok.decode(std::vector<int64_t>(in.begin(), in.begin() + 8)).c_str(),
              tok.decode(std::vector<int64_t>(tg.begin(), tg.begin() + 8)).c_str());
  check(std::equal(in.begin() + 1, in.begin() + 8, tg.begin()), "targets are the inputs shifted by one");

  std::printf("\n2. Model and optimizer\n");
  mamba::MambaConfig config;
  config.d_model = 64, config.n_layer = 2, config.vocab_size = tok.size();
  Generator init_gen(0);
  mamba::MambaLM model(config, init_gen);
  std::printf("  MambaLM d_model %ld, n_layer %ld: %ld parameters\n", (long)config.d_model, (long)config.n_layer,
              (long)model.num_parameters());
  // Weight decay on the matrices only; A_log, D, norms and biases keep their values (param_groups.h).
  std::vector<optim::ParamGroup> groups = optim::weight_decay_groups(model.named_parameters(), kPeakLr, kWeightDecay);
  bool split_ok = groups.size() == 2;
  for (size_t g = 0; g < groups.size(); ++g) {
    std::printf("  group %zu, weight decay %.1f: %zu tensors, e.g.\n", g, groups[g].weight_decay, groups[g].params.size());
    for (const auto& [name, p] : groups[g].params) {
      if (name.find("layers.1.") == std::string::npos) std::printf("    %s\n", name.c_str());
      bool exempt = name.ends_with("A_log") || name.ends_with(".D") || name.ends_with("bias") ||
                    name.find("norm") != std::string::npos;
      split_ok = split_ok && exempt == (groups[g].weight_decay == 0);
    }
  }
  check(split_ok, "no weight decay on A_log, D, norms and biases; decay on every weight matrix");
  optim::AdamW optimizer(groups, {.beta1 = 0.9, .beta2 = 0.95});
  nn::WarmupCosineSchedule schedule{kPeakLr, kMinLr, kWarmup, kSteps};
  std::printf("  lr: step 0 %.1e, step %ld %.1e (peak), step %ld %.1e, step %ld %.1e\n", schedule.lr(0),
              (long)kWarmup - 1, schedule.lr(kWarmup - 1), (long)(kWarmup + kSteps) / 2, schedule.lr((kWarmup + kSteps) / 2),
              (long)kSteps - 1, schedule.lr(kSteps - 1));
  check(schedule.lr(kWarmup - 1) == kPeakLr && std::abs(schedule.lr(kSteps) - kMinLr) < 1e-12,
        "warmup ends at the peak lr, the cosine at the floor");

  std::printf("\n3. Training: %ld steps of %ld x %ld tokens\n", (long)kSteps, (long)kBatch, (long)kSeqLen);
  apps::Series train_curve{"train loss", "#1f77b4", {}}, val_curve{"val loss", "#d62728", {}};
  double first_val = val_loss(model, data.val);
  val_curve.points.emplace_back(0, first_val);
  std::printf("  step   0: val loss %.3f (ln 65 = %.3f)\n", first_val, std::log(65.0));
  check(std::abs(first_val - std::log(65.0)) < 0.05, "the untrained model's loss is ln(65): a uniform guess");
  print_sample(0, sample(model, tok, "\n", kSampleLength));
  TensorList params = model.parameters();
  auto start = std::chrono::steady_clock::now();
  double last_val = first_val, last_train = 0, window = 0, train_seconds = 0;
  for (int64_t step = 0; step < kSteps; ++step) {
    optimizer.set_lr(schedule.lr(step));
    apps::Batch batch = apps::random_batch(data.train, kBatch, kSeqLen, batch_gen);  // (B, L) each
    Tensor loss = model.loss(batch.inputs, batch.targets);  // forward + cross-entropy: a scalar
    double value = loss.item<double>();
    if (!std::isfinite(value)) return check(false, "the loss stays finite"), 1;
    optimizer.zero_grad();
    loss.backward();                              // fills every parameter's .grad()
    nn::clip_grad_norm_(params, kClip);           // one bad batch cannot throw the model far
    optimizer.step();                             // AdamW update, decay per group
    train_curve.points.emplace_back(step + 1, value);
    window += value;
    if ((step + 1) % kValEvery == 0) {  // the validation curve, finer than the printout
      train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      last_val = val_loss(model, data.val);
      val_curve.points.emplace_back(step + 1, last_val);
      start = std::chrono::steady_clock::now();  // time the training only, not evaluation and sampling
    }
    if ((step + 1) % kPrintEvery == 0) {
      std::printf("  step %3ld: train loss %.3f (mean of the last %ld), val loss %.3f, %.0f tokens/s\n", (long)step + 1,
                  window / kPrintEvery, (long)kPrintEvery, last_val, (step + 1) * kBatch * kSeqLen / train_seconds);
      print_sample(step + 1, sample(model, tok, "\n", kSampleLength));
      last_train = window / kPrintEvery;
      window = 0;
      start = std::chrono::steady_clock::now();
    }
  }
  check(last_val < 2.4, "the validation loss fell below 2.4 (from 4.17)");
  check(last_train < 2.4, "the training loss over the last 100 steps is below 2.4");

  std::ofstream("loss.svg") << apps::loss_curve_svg({train_curve, val_curve}, "Lesson 6: Mamba on TinyShakespeare");
  std::printf("\nwrote loss.svg\n");
  std::printf(g_failed ? "some checks FAILED\n" : "all checks passed\n");
  return g_failed ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
