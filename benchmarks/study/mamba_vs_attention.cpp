// The Mamba-vs-attention study (docs/mamba_vs_attention.md): the measurements behind the Mamba
// paper's claim, taken on this library's two models on the machine at hand. Each part is a
// subcommand; benchmarks/study/run_study.sh runs them all. Results go to --out (JSON lines) and
// the plots to --svg-dir (docs/ by default).
//   quality       train one model for a wall-clock budget (the schedule sized to the budget by a
//                 short calibration run) and keep its validation loss against wall time
//   quality-plot  val loss against wall time of several quality runs, on one plot
//   generation    batch-1 generation from position 1 to --max-position: time per token and the
//                 memory of the recurrent state / KV cache at each position, with fitted curves
//   train-length  one training step at L = 256 .. 8192 with a fixed number of tokens per step,
//                 and the fitted exponent of the cost per sequence against L
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/common/loss_plot.h"
#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "fit.h"
#include "mambagrad.h"
#include "models/gpt/model.h"
#include "models/mamba/model.h"
#include "nn/atomic_file.h"

namespace mg::study {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

const char* kMambaColor = "#1f77b4";
const char* kGptColor = "#d62728";
const char* kExtraColors[] = {"#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

void write_svg(const fs::path& path, const std::string& svg) {
  fs::create_directories(path.parent_path());
  nn::write_file_atomically(path.string(), svg);
  std::printf("wrote %s\n", path.c_str());
}

// The two models of the study at equal size: the standard CPU Mamba (474,880 parameters at vocab
// 65) and the default GPT (477,792); `positions` sets the GPT's context window.
std::shared_ptr<LanguageModel> make_study_model(const std::string& kind, int64_t positions, Generator& gen) {
  if (kind == "mamba") return std::make_shared<mamba::MambaLM>(mamba::MambaConfig{}, gen);
  gpt::GPTConfig c;
  c.n_positions = positions;
  return std::make_shared<gpt::GPT>(c, gen);
}

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
void quality_plot(const std::vector<std::string>& runs, const fs::path& svg) {
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
  write_svg(svg, apps::line_plot_svg(series, "Validation loss against wall time (2 cores, TinyShakespeare)",
                                     {.x_label = "wall time (s)", .y_label = "validation loss"}));
}

// ---- 2. generation: time and state memory against the position

struct GenerationCurve {
  std::vector<std::pair<double, double>> seconds_per_token, state_bytes;  // (position, value)
};

GenerationCurve generation_curve(LanguageModel& model, int64_t max_position, int64_t window, int repeats) {
  NoGradGuard no_grad;
  model.eval();
  const int64_t windows = max_position / window;
  std::vector<std::vector<double>> times(windows);  // per window, one mean per repeat
  GenerationCurve curve;
  for (int rep = 0; rep < repeats; ++rep) {
    std::unique_ptr<GenerationSession> session = model.start_generation(1);
    Generator gen(rep);
    Tensor token = zeros({1, 1}, {.dtype = DType::Int64});
    for (int64_t w = 0; w < windows; ++w) {
      const auto start = Clock::now();
      for (int64_t i = 0; i < window; ++i) {
        Tensor logits = session->feed(token);
        token = argmax(logits, -1).reshape({1, 1});  // greedy: the cost of a real generation step
      }
      times[w].push_back(seconds_since(start) / static_cast<double>(window));
      if (rep == 0) curve.state_bytes.emplace_back(static_cast<double>(session->position()), session->state_bytes());
    }
  }
  for (int64_t w = 0; w < windows; ++w) {
    std::sort(times[w].begin(), times[w].end());
    curve.seconds_per_token.emplace_back(static_cast<double>((w + 1) * window), times[w][times[w].size() / 2]);
  }
  return curve;
}

void generation(int64_t max_position, int64_t window, int repeats, const fs::path& out, const fs::path& svg_dir) {
  std::vector<apps::Series> speed, memory;
  json results = json::object();
  for (const std::string kind : {"mamba", "gpt"}) {
    Generator gen(0);
    auto model = make_study_model(kind, max_position, gen);
    GenerationCurve c = generation_curve(*model, max_position, window, repeats);
    LineFit time_fit = fit_line(c.seconds_per_token), memory_fit = fit_line(c.state_bytes);
    const std::string name = kind == "mamba" ? "Mamba" : "GPT";
    const char* color = kind == "mamba" ? kMambaColor : kGptColor;
    std::printf("generation %s (%ld parameters): seconds/token = %.3g + %.3g * position (at 1: %.0f tokens/s, at %ld: "
                "%.0f tokens/s measured, %.0f fitted); state bytes = %.4g + %.4g * position (%.4g at %ld)\n",
                name.c_str(), static_cast<long>(model->num_parameters()), time_fit.intercept, time_fit.slope,
                1.0 / c.seconds_per_token.front().second, static_cast<long>(max_position),
                1.0 / c.seconds_per_token.back().second, 1.0 / time_fit(static_cast<double>(max_position)),
                memory_fit.intercept, memory_fit.slope, c.state_bytes.back().second, static_cast<long>(max_position));
    apps::Series measured{name + " (measured)", color, {}, false, false}, fitted{name + " (fit)", color, {}, true, false};
    for (auto [p, s] : c.seconds_per_token) {
      measured.points.emplace_back(p, 1.0 / s);
      fitted.points.emplace_back(p, 1.0 / time_fit(p));
    }
    speed.push_back(measured);
    speed.push_back(fitted);
    apps::Series bytes{name, color, {}, false, false};
    for (auto [p, b] : c.state_bytes) bytes.points.emplace_back(p, b / 1024.0);
    memory.push_back(bytes);
    results[kind] = {{"parameters", model->num_parameters()}, {"seconds_per_token", c.seconds_per_token},
                     {"state_bytes", c.state_bytes}, {"time_fit", {time_fit.intercept, time_fit.slope}},
                     {"memory_fit", {memory_fit.intercept, memory_fit.slope}}};
  }
  fs::create_directories(out);
  nn::write_file_atomically((out / "generation.json").string(), results.dump(1));
  write_svg(svg_dir / "mamba_vs_attention_generation_speed.svg",
            apps::line_plot_svg(speed, "Generation speed at batch 1 (1 thread)",
                                {.x_label = "position in the sequence", .y_label = "tokens/s", .log_y = true}));
  write_svg(svg_dir / "mamba_vs_attention_generation_memory.svg",
            apps::line_plot_svg(memory, "Recurrent state / KV cache at batch 1",
                                {.x_label = "position in the sequence", .y_label = "KiB", .log_y = true}));
}

// ---- 3. training cost against the sequence length

double train_step_seconds(LanguageModel& model, int64_t batch, int64_t seq_len, int repeats) {
  Generator gen(1);
  optim::AdamW optimizer(optim::weight_decay_groups(model.named_parameters(), 1e-4, 0.1), {});
  TensorList leaves = model.parameters();
  Tensor tokens = randint(0, model.vocab_size(), {batch, seq_len + 1}, gen);
  Tensor inputs = contiguous(narrow(tokens, 1, 0, seq_len)), targets = contiguous(narrow(tokens, 1, 1, seq_len));
  std::vector<double> times;
  for (int i = 0; i <= repeats; ++i) {  // the first is a warm-up
    const auto start = Clock::now();
    Tensor loss = model.loss(inputs, targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(leaves, 1.0);
    optimizer.step();
    if (i > 0) times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void train_length(int64_t tokens, const std::vector<int64_t>& lengths, int repeats, const fs::path& out,
                  const fs::path& svg_dir) {
  std::vector<apps::Series> series;
  json results = json::object();
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  for (const std::string kind : {"mamba", "gpt"}) {
    Generator gen(0);
    auto model = make_study_model(kind, longest, gen);
    const std::string name = kind == "mamba" ? "Mamba" : "GPT";
    std::vector<std::pair<double, double>> per_sequence;  // (L, seconds per sequence)
    for (int64_t L : lengths) {
      MG_CHECK(tokens % L == 0, "train-length: --tokens ", tokens, " is not a multiple of L = ", L);
      const double step = train_step_seconds(*model, tokens / L, L, repeats);
      per_sequence.emplace_back(static_cast<double>(L), step / static_cast<double>(tokens / L));
      std::printf("train-length %s: L %5ld, batch %3ld: %.3f s per step, %.1fk tokens/s\n", name.c_str(),
                  static_cast<long>(L), static_cast<long>(tokens / L), step, static_cast<double>(tokens) / step / 1000);
      std::fflush(stdout);
    }
    // The exponent p of cost per sequence ~ L^p: over all lengths, the shortest three and the longest three.
    auto slice = [&](size_t from, size_t to) {
      return std::vector<std::pair<double, double>>(per_sequence.begin() + from, per_sequence.begin() + to);
    };
    const size_t n = per_sequence.size();
    const double p_all = fit_power(per_sequence).second, p_short = fit_power(slice(0, std::min<size_t>(3, n))).second,
                 p_long = fit_power(slice(n >= 3 ? n - 3 : 0, n)).second;
    std::printf("train-length %s: cost per sequence ~ L^p with p = %.2f over all L, %.2f over the shortest three, "
                "%.2f over the longest three\n", name.c_str(), p_all, p_short, p_long);
    auto [c, p] = fit_power(per_sequence);
    const char* color = kind == "mamba" ? kMambaColor : kGptColor;
    apps::Series measured{name + " (p = " + str(std::round(p_long * 100) / 100) + " at long L)", color, per_sequence,
                          false, true};
    apps::Series fitted{name + " fit over all L: p = " + str(std::round(p_all * 100) / 100), color, {}, true, false};
    for (auto [L, s] : per_sequence) fitted.points.emplace_back(L, c * std::pow(L, p));
    series.push_back(measured);
    series.push_back(fitted);
    results[kind] = {{"parameters", model->num_parameters()}, {"seconds_per_sequence", per_sequence},
                     {"exponent_all", p_all}, {"exponent_short", p_short}, {"exponent_long", p_long}};
  }
  fs::create_directories(out);
  nn::write_file_atomically((out / "train_length.json").string(), results.dump(1));
  write_svg(svg_dir / "mamba_vs_attention_train_length.svg",
            apps::line_plot_svg(series, str("Training cost per sequence at ", tokens, " tokens per step (2 threads)"),
                                {.x_label = "sequence length L", .y_label = "seconds per sequence (forward + backward + AdamW)",
                                 .log_x = true, .log_y = true}));
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

  int64_t max_position = 8192, window = 128;
  int repeats = 3;
  CLI::App* g = app.add_subcommand("generation", "Batch-1 generation: time per token and state memory vs position");
  g->add_option("--max-position", max_position, "Last position")->capture_default_str();
  g->add_option("--window", window, "Positions averaged per point")->capture_default_str();
  g->add_option("--repeats", repeats, "Runs (the median of each window is kept)")->capture_default_str();

  int64_t tokens = 8192;
  std::vector<int64_t> lengths{256, 512, 1024, 2048, 4096, 8192};
  int step_repeats = 3;
  CLI::App* t = app.add_subcommand("train-length", "One training step at each L with a fixed number of tokens");
  t->add_option("--tokens", tokens, "Tokens per step")->capture_default_str();
  t->add_option("--lengths", lengths, "Sequence lengths")->capture_default_str();
  t->add_option("--repeats", step_repeats, "Timed steps per length (the median is kept)")->capture_default_str();

  try {
    app.parse(argc, argv);
    if (q->parsed()) {
      train.gpt.n_positions = train.seq_len;
      study::quality(train, budget, label, out);
    } else if (qp->parsed()) {
      study::quality_plot(runs, std::filesystem::path(svg_dir) / quality_svg);
    } else if (g->parsed()) {
      study::generation(max_position, window, repeats, out, svg_dir);
    } else if (t->parsed()) {
      study::train_length(tokens, lengths, step_repeats, out, svg_dir);
    }
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
