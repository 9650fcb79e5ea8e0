// The reports of parts 2 and 3: from a part's JSON alone (what it measured), the fitted curves
// (printed), the Markdown table for docs/mamba_vs_attention.md and the SVG plots. Nothing here
// measures, so the same files come out whether a part has just run here or its JSON came back
// from another machine (`mamba_vs_attention report FILE.json`).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "apps/common/loss_plot.h"
#include "fit.h"
#include "study.h"
#include "tensor/error.h"

namespace mg::study {

namespace {

using nlohmann::json;
using Points = std::vector<std::pair<double, double>>;  // (x, y)

// A run's curve `key`, or nothing when the run failed before measuring it.
Points points(const json& run, const char* key) {
  return run.contains(key) && run[key].is_array() ? run[key].get<Points>() : Points{};
}

// Mamba blue (but green for its generation op by op on a GPU, beside the graph's), the GPT red.
const char* color_of(const json& run, bool gpu) {
  if (run.at("kind") == "gpt") return kGptColor;
  return gpu && !run.value("cuda_graph", true) ? kExtraColors[0] : kMambaColor;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

void report_generation(const json& r, const Output& out) {
  const bool gpu = out.gpu;
  const int64_t window = r.at("window"), max_position = r.at("max_position");
  const std::string at = with_commas(window) + " / " + with_commas(max_position);
  std::string table = "| model | parameters | a (per token) | b (per cached position) | tokens/s at p = " + at +
                      " (fit at " + with_commas(max_position) + ") | state at p = " + at +
                      (gpu ? " | GPU memory in use at p = " + at : "") + " |\n" +
                      "| --- | ---: | ---: | ---: | ---: | ---: |" + (gpu ? " ---: |" : "") + "\n";
  std::vector<apps::Series> speed, memory;
  std::vector<std::string> memory_plotted;  // kinds whose state is plotted (Mamba's two ways hold the same)
  for (const json& run : r.at("runs")) {
    const std::string label = run.at("label"), kind = run.at("kind");
    const Points times = points(run, "seconds_per_token"), state = points(run, "state_bytes"),
                 device_bytes = points(run, "device_allocated_bytes");
    if (times.empty() || state.empty()) {
      const std::string why = first_line(run.value("error", std::string("no measurements")));
      std::printf("generation %s: not measured: %s\n", label.c_str(), why.c_str());
      table += "| " + label + " | not measured: " + why + " |\n";
      continue;
    }
    const LineFit time_fit = fit_line(times), memory_fit = fit_line(state);
    const double first_tps = 1.0 / times.front().second, last_tps = 1.0 / times.back().second;
    const double fit_tps = 1.0 / time_fit(static_cast<double>(max_position));
    const int64_t parameters = run.value("parameters", int64_t{0});
    std::printf("generation %s (%ld parameters): seconds/token = %.3g + %.3g * position (at %.0f: %.0f tokens/s, at "
                "%.0f: %.0f tokens/s measured, %.0f fitted); state bytes = %.4g + %.4g * position (%.4g at %.0f)\n",
                label.c_str(), static_cast<long>(parameters), time_fit.intercept, time_fit.slope, times.front().first,
                first_tps, times.back().first, last_tps, fit_tps, memory_fit.intercept, memory_fit.slope,
                state.back().second, state.back().first);
    table += format("| %s | %s | %.3g us | %.3g ns | %.0f / %.0f (%.0f) | %s / %s", label.c_str(),
                    with_commas(parameters).c_str(), time_fit.intercept * 1e6, time_fit.slope * 1e9, first_tps,
                    last_tps, fit_tps, format_bytes(state.front().second).c_str(),
                    format_bytes(state.back().second).c_str());
    if (gpu)
      table += " | " + (device_bytes.empty() ? std::string("?")
                                             : format_bytes(device_bytes.front().second) + " / " +
                                                   format_bytes(device_bytes.back().second));
    table += " |\n";

    const char* color = color_of(run, gpu);
    apps::Series measured{label + " (measured)", color, {}, false, false};
    apps::Series fitted{label + " (fit)", color, {}, true, false};
    for (auto [p, s] : times) {
      measured.points.emplace_back(p, 1.0 / s);
      fitted.points.emplace_back(p, 1.0 / time_fit(p));
    }
    speed.push_back(measured);
    speed.push_back(fitted);
    if (std::find(memory_plotted.begin(), memory_plotted.end(), kind) == memory_plotted.end()) {
      memory_plotted.push_back(kind);
      apps::Series bytes{kind == "mamba" ? "Mamba state" : "GPT KV cache", color, {}, false, false};
      for (auto [p, b] : state) bytes.points.emplace_back(p, b / 1024.0);
      memory.push_back(bytes);
    }
    if (!device_bytes.empty()) {
      apps::Series in_use{label + ": all GPU memory in use", color, {}, true, false};
      for (auto [p, b] : device_bytes) in_use.points.emplace_back(p, b / 1024.0);
      memory.push_back(in_use);
    }
  }
  // Runs of one model (Mamba from a graph and op by op) must generate the same greedy tokens.
  const json& runs = r.at("runs");
  for (size_t i = 0; i < runs.size(); ++i)
    for (size_t j = i + 1; j < runs.size(); ++j)
      if (runs[i].at("kind") == runs[j].at("kind") && runs[i].contains("tokens") && runs[j].contains("tokens"))
        std::printf("generation: %s and %s generated %s first %zu tokens\n",
                    runs[i]["label"].get<std::string>().c_str(), runs[j]["label"].get<std::string>().c_str(),
                    runs[i]["tokens"] == runs[j]["tokens"] ? "the same" : "(warning) different",
                    runs[i]["tokens"].size());
  std::printf("\n%s\n", table.c_str());
  out.write(out.file("generation", "md"), table);
  const std::string where = r.value("where", r.value("device", std::string("?")));
  out.write_svg(out.svg("generation_speed"),
                apps::line_plot_svg(speed, "Generation speed at batch 1 (" + where + ")",
                                    {.x_label = "position in the sequence", .y_label = "tokens/s", .log_y = true}));
  out.write_svg(out.svg("generation_memory"),
                apps::line_plot_svg(memory, std::string(gpu ? "GPU memory" : "Recurrent state / KV cache") +
                                                " at batch 1 (" + where + ")",
                                    {.x_label = "position in the sequence", .y_label = "KiB", .log_y = true}));
}

// The exponent p of y ~ x^p over points [from, to), or NaN for fewer than two points.
double exponent(const Points& curve, size_t from, size_t to) {
  if (to < from + 2) return std::nan("");
  return fit_power(Points(curve.begin() + from, curve.begin() + to)).second;
}

std::string exponent_text(double p) { return std::isnan(p) ? "n/a" : format("%.2f", p); }

void report_train_length(const json& r, const Output& out) {
  const bool gpu = out.gpu;
  const std::vector<int64_t> lengths = r.at("lengths");
  const int64_t tokens = r.at("tokens_per_step");
  std::string header = "| L |", rule = "| --- |", rows;
  for (int64_t L : lengths) header += format(" %s |", with_commas(L).c_str()), rule += " ---: |";
  std::string exponents =
      "| model | p over all L | p over the shortest three | p over the longest three |\n| --- | ---: | ---: | ---: |\n";
  std::vector<apps::Series> series;
  // The value of `curve` at L as text, or "-" where L was not measured.
  auto cells = [&](const Points& curve, auto&& text) {
    std::string row;
    for (int64_t L : lengths) {
      auto it = std::find_if(curve.begin(), curve.end(), [&](const auto& point) { return point.first == L; });
      row += format(" %s |", it == curve.end() ? "-" : text(it->second).c_str());
    }
    return row;
  };
  for (const json& run : r.at("runs")) {
    const std::string label = run.at("label");
    const Points per_sequence = points(run, "seconds_per_sequence"), peak = points(run, "peak_allocated_bytes");
    if (run.contains("error")) std::printf("train-length %s: failed: %s\n", label.c_str(), first_line(run["error"]).c_str());
    if (run.contains("failed"))
      for (auto& [L, error] : run["failed"].items())
        std::printf("train-length %s: L = %s failed: %s\n", label.c_str(), L.c_str(),
                    first_line(error.get<std::string>()).c_str());
    rows += "| " + label + ", ms per sequence |" + cells(per_sequence, [](double s) { return format("%.4g", s * 1e3); }) + "\n";
    if (gpu) rows += "| " + label + ", peak memory |" + cells(peak, [](double b) { return format_bytes(b); }) + "\n";
    const size_t n = per_sequence.size();
    const double p_all = exponent(per_sequence, 0, n), p_short = exponent(per_sequence, 0, std::min<size_t>(3, n)),
                 p_long = exponent(per_sequence, n >= 3 ? n - 3 : 0, n);
    std::printf("train-length %s (%ld parameters): cost per sequence ~ L^p with p = %s over all L, %s over the "
                "shortest three, %s over the longest three\n", label.c_str(),
                static_cast<long>(run.value("parameters", int64_t{0})), exponent_text(p_all).c_str(),
                exponent_text(p_short).c_str(), exponent_text(p_long).c_str());
    exponents += "| " + label + " | " + exponent_text(p_all) + " | " + exponent_text(p_short) + " | " +
                 exponent_text(p_long) + " |\n";
    if (n == 0) continue;
    const char* color = color_of(run, gpu);
    series.push_back({label + " (p = " + exponent_text(p_long) + " at long L)", color, per_sequence, false, true});
    if (n >= 2) {
      auto [c, p] = fit_power(per_sequence);
      apps::Series fitted{label + " fit over all L: p = " + exponent_text(p_all), color, {}, true, false};
      for (auto [L, s] : per_sequence) fitted.points.emplace_back(L, c * std::pow(L, p));
      series.push_back(fitted);
    }
  }
  const std::string table = header + "\n" + rule + "\n" + rows + "\n" + exponents;
  std::printf("\n%s\n", table.c_str());
  out.write(out.file("train_length", "md"), table);
  const std::string where = r.value("where", r.value("device", std::string("?")));
  out.write_svg(out.svg("train_length"),
                apps::line_plot_svg(series, format("Training cost per sequence at %s tokens per step (%s)",
                                                   with_commas(tokens).c_str(), where.c_str()),
                                    {.x_label = "sequence length L",
                                     .y_label = "seconds per sequence (forward + backward + AdamW)",
                                     .log_x = true, .log_y = true}));
}

}  // namespace

void report(const json& results, const Output& out) {
  try {
    MG_CHECK(results.is_object() && results.contains("part") && results.contains("device") && results.contains("runs"),
             "report: expected the JSON of a part of the study (with part, device and runs)");
    Output where = out;
    where.gpu = results["device"].get<std::string>().rfind("cuda", 0) == 0;
    const std::string part = results["part"];
    if (part == "generation") return report_generation(results, where);
    MG_CHECK(part == "train_length", "report: unknown part '", part, "' (expected generation or train_length)");
    report_train_length(results, where);
  } catch (const json::exception& e) {  // a field missing or of the wrong type
    throw Error(str("report: the JSON is not a part's as the study writes it: ", e.what()));
  }
}

}  // namespace mg::study
