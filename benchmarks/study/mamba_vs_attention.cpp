// The Mamba-vs-attention study (docs/mamba_vs_attention.md): the measurements behind the Mamba
// paper's claim, taken on this library's two models on the machine at hand. Each part is a
// subcommand; benchmarks/study/run_study.sh runs them all. Results go to --out (JSON, and
// Markdown tables to paste into the page) and the plots to --svg-dir (docs/ by default).
//   quality       train one model for a wall-clock budget (the schedule sized to the budget by a
//                 short calibration run) and keep its validation loss against wall time (CPU)
//   quality-plot  val loss against wall time of several quality runs, on one plot
//   generation    batch-1 generation from position 1 to --max-position: time per token and the
//                 memory of the recurrent state / KV cache at each position, with fitted curves
//                 (generation.cpp; --device cpu or cuda)
//   train-length  one training step at L = 256 .. 8192 with a fixed number of tokens per step,
//                 and the fitted exponent of the cost per sequence against L (train_length.cpp;
//                 --device cpu or cuda)
//   report        the fits, tables and plots of parts 2 and 3 again from their JSON alone (for
//                 files brought back from a GPU machine; report.cpp)
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/common/device_option.h"
#include "apps/common/loss_plot.h"
#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "mambagrad.h"
#include "study.h"

namespace mg::study {

using nlohmann::json;

// ---- 1. quality per second

void quality(apps::TrainOptions options, double budget_s, const std::string& label, const fs::path& out) {
  const std::string text = apps::read_text_file(apps::find_tinyshakespeare(""));
  // Calibrate: the step rate of this model on this machine, so the cosine schedule ends at the
  // budget. The first steps are slower (memory first touched), so the rate is taken from steps
  // 20 to 100 of a 100-step run (40 steps, ~5 s, misjudged one run's rate by 15%).
  apps::TrainOptions probe = options;
  probe.steps = 100, probe.warmup = 10, probe.time_budget_s = 0, probe.eval_every = 1000, probe.save_every = 1000;
  probe.log_every = 20, probe.progress = false, probe.out_dir = (out / (label + "_calibration")).string();
  apps::train(probe, text);
  std::vector<std::pair<double, double>> times;  // (step, elapsed_s)
  std::ifstream probe_metrics(fs::path(probe.out_dir) / "metrics.jsonl");
  for (std::string line; std::getline(probe_metrics, line);) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.contains("train_loss")) times.emplace_back(j["step"].get<double>(), j["elapsed_s"].get<double>());
  }
  MG_CHECK(times.size() >= 2, "quality: the calibration run logged ", times.size(), " lines");
  fs::remove_all(probe.out_dir);
  const double steps_per_s = (times.back().first - times.front().first) / (times.back().second - times.front().second);
  const double tokens_per_s = steps_per_s * static_cast<double>(options.batch * options.seq_len);
  // Evaluation takes ~eval_batches / 3 steps' time every eval_every steps: leave room for it.
  const double step_s = static_cast<double>(options.batch * options.seq_len) / tokens_per_s;
  const double eval_fraction = static_cast<double>(options.eval_batches) / 3.0 / static_cast<double>(options.eval_every);
  options.steps = static_cast<int64_t>(budget_s / step_s / (1.0 + eval_fraction));
  options.time_budget_s = budget_s;
  options.out_dir = (out / label).string();
  std::printf("quality %s: %.0f tokens/s in calibration -> a schedule of %ld steps for %.0f s\n", label.c_str(),
              tokens_per_s, static_cast<long>(options.steps), budget_s);
  std::fflush(stdout);
  apps::TrainResult r = apps::train(options, text);
  std::printf("quality %s: val loss %.4f at step %ld after the budget (%.0f tokens/s)\n", label.c_str(), r.val_loss,
              static_cast<long>(r.last_step), r.tokens_per_second);
}

// Val loss against wall time of each run (label=dir), and a summary per run.
void quality_plot(const std::vector<std::string>& runs, const Output& out, const std::string& svg_name) {
  std::vector<apps::Series> series;
  size_t extra = 0;
  for (const std::string& run : runs) {
    const size_t eq = run.find('=');
    MG_CHECK(eq != std::string::npos, "quality-plot: expected LABEL=DIR, got ", run);
    const std::string label = run.substr(0, eq), dir = run.substr(eq + 1);
    std::ifstream metrics(fs::path(dir) / "metrics.jsonl");
    MG_CHECK(metrics.good(), "quality-plot: cannot read ", dir, "/metrics.jsonl");
    const char* color = label.rfind("Mamba", 0) == 0 ? kMambaColor
                        : extra == 0 && label.rfind("GPT", 0) == 0 ? kGptColor
                                                                     : kExtraColors[extra % 4];
    if (color != kMambaColor) ++extra;
    apps::Series s{label, color, {}, false, true};
    double last_tps = 0, best = 1e9;
    int64_t last_step = 0;
    for (std::string line; std::getline(metrics, line);) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      if (j.contains("tokens_per_second")) last_tps = j["tokens_per_second"];
      if (j.contains("val_loss") && j.contains("elapsed_s")) {
        s.points.emplace_back(j["elapsed_s"].get<double>(), j["val_loss"].get<double>());
        best = std::min(best, j["val_loss"].get<double>());
        last_step = j["step"];
      }
    }
    MG_CHECK(!s.points.empty(), "quality-plot: no val_loss with elapsed_s in ", dir, "/metrics.jsonl");
    std::printf("| %s | %ld | %.1fk | %.4f | %.4f |\n", label.c_str(), static_cast<long>(last_step), last_tps / 1000,
                s.points.back().second, best);
    series.push_back(std::move(s));
  }
  out.write_svg(svg_name, apps::line_plot_svg(series, "Validation loss against wall time (2 cores, TinyShakespeare)",
                                              {.x_label = "wall time (s)", .y_label = "validation loss"}));
}

}  // namespace mg::study

int main(int argc, char** argv) {
  using namespace mg;
  CLI::App app{"The Mamba-vs-attention study: quality per second, generation, training cost against length"};
  app.require_subcommand(1);
  std::string out = "out/study", svg_dir = "docs";
  app.add_option("--out", out, "Directory for results (JSON, training runs)")->capture_default_str();
  app.add_option("--svg-dir", svg_dir, "Directory for the plots")->capture_default_str();

  apps::TrainOptions train;
  double budget = 600;
  std::string label;
  CLI::App* q = app.add_subcommand("quality", "Train one model for a wall-clock budget; keep val loss vs time");
  q->add_option("--label", label, "Name of the run (its directory under --out)")->required();
  q->add_option("--model", train.model_kind, "mamba or gpt")->check(CLI::IsMember({"mamba", "gpt"}))->capture_default_str();
  q->add_option("--budget", budget, "Seconds of training")->capture_default_str();
  q->add_option("--n-layer", train.gpt.n_layer, "GPT layers")->capture_default_str();
  q->add_option("--n-embd", train.gpt.n_embd, "GPT width")->capture_default_str();
  q->add_option("--n-head", train.gpt.n_head, "GPT heads")->capture_default_str();
  q->add_option("--dropout", train.gpt.dropout, "GPT dropout")->capture_default_str();
  q->add_option("--batch", train.batch, "Sequences per step")->capture_default_str();
  q->add_option("--seq-len", train.seq_len, "Tokens per sequence")->capture_default_str();
  q->add_option("--lr", train.lr, "Peak learning rate")->capture_default_str();
  q->add_option("--min-lr", train.min_lr, "Final learning rate")->capture_default_str();
  q->add_option("--warmup", train.warmup, "Warmup steps")->capture_default_str();
  q->add_option("--beta2", train.beta2, "AdamW beta2")->capture_default_str();
  q->add_option("--weight-decay", train.weight_decay, "AdamW weight decay")->capture_default_str();

  std::vector<std::string> runs;
  std::string quality_svg = "mamba_vs_attention_quality.svg";
  CLI::App* qp = app.add_subcommand("quality-plot", "Plot val loss vs wall time of quality runs (LABEL=DIR ...)");
  qp->add_option("runs", runs, "LABEL=DIR of each run")->required();
  qp->add_option("--name", quality_svg, "File name of the plot in --svg-dir")->capture_default_str();

  // Parts 2 and 3 run on the CPU or a GPU, each with a pair of models of equal size (study.h).
  std::string device_name = "cpu", models;
  auto add_device_options = [&](CLI::App* part) {
    part->add_option("--device", device_name, "cpu, cuda or cuda:N")->capture_default_str();
    part->add_option("--models", models, "Model pair: standard (the CPU study's, ~475k parameters each) or a (config "
                     "A's Mamba, 5.8M, and a GPT of its width); default: standard on the CPU, a on a GPU")
        ->check(CLI::IsMember({"standard", "a"}));
  };
  study::GenerationOptions generation;
  CLI::App* g = app.add_subcommand("generation", "Batch-1 generation: time per token and state memory vs position");
  g->add_option("--max-position", generation.max_position, "Last position")->capture_default_str()
      ->check(CLI::PositiveNumber);
  g->add_option("--window", generation.window, "Positions averaged per point")->capture_default_str()
      ->check(CLI::PositiveNumber);
  g->add_option("--repeats", generation.repeats, "Runs (the median of each window is kept)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  add_device_options(g);

  study::TrainLengthOptions train_length;
  CLI::App* t = app.add_subcommand("train-length", "One training step at each L with a fixed number of tokens");
  t->add_option("--tokens", train_length.tokens, "Tokens per step")->capture_default_str()->check(CLI::PositiveNumber);
  t->add_option("--lengths", train_length.lengths, "Sequence lengths")->capture_default_str()
      ->check(CLI::PositiveNumber);
  t->add_option("--repeats", train_length.repeats, "Timed steps per length (the median is kept)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  t->add_option("--warmup", train_length.warmup, "Untimed steps before them at each length")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  add_device_options(t);

  std::vector<std::string> reported;
  CLI::App* r = app.add_subcommand("report", "Fits, Markdown tables and plots of parts 2 and 3 from their JSON");
  r->add_option("files", reported, "generation[_cuda].json and/or train_length[_cuda].json")->required()
      ->check(CLI::ExistingFile);

  try {
    app.parse(argc, argv);
    study::Output output{.dir = out, .svg_dir = svg_dir};
    if (q->parsed()) {
      train.gpt.n_positions = train.seq_len;
      study::quality(train, budget, label, out);
    } else if (qp->parsed()) {
      study::quality_plot(runs, output, quality_svg);
    } else if (r->parsed()) {
      for (const std::string& file : reported) {
        std::ifstream in(file);
        nlohmann::json results = nlohmann::json::parse(in, nullptr, false);
        MG_CHECK(!results.is_discarded(), "report: ", file, " is not valid JSON");
        study::report(results, output);
      }
    } else {
      const Device device = apps::device_from_flag(device_name, "--device");
      output.gpu = device.is_cuda();
      const study::ModelPair pair = study::ModelPair::named(models.empty() ? study::ModelPair::default_for(device)
                                                                           : models);
      if (g->parsed()) study::generation(pair, generation, device, output);
      else study::train_length(pair, train_length, device, output);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
