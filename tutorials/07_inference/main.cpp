// Lesson 7: inference in recurrent mode. A Mamba LM carries a fixed-size state from token to
// token (MambaLM::step with an InferenceState), so each new token costs the same work and memory
// however long the text already is; a transformer's KV cache grows with every token.
#include <mambagrad.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "models/mamba/model.h"
#include "nn/init.h"
#include "ops/cpu/parallel.h"

using namespace mg;
using Clock = std::chrono::steady_clock;

namespace {
bool g_failed = false;
void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) std::printf("FAIL: %s\n", what.c_str()), g_failed = true;
}
double max_abs_diff(const Tensor& a, const Tensor& b) { return max(abs(a - b)).item<double>(); }
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

int64_t state_bytes(const mamba::InferenceState& state) {
  int64_t bytes = 0;
  for (const auto& layer : state.layers) bytes += layer.conv_state.nbytes() + layer.ssm_state.nbytes();
  return bytes;
}

// A same-width transformer caches a key and a value vector (d_model floats each) per layer and
// per token seen: 2 * n_layer * L * d_model * 4 bytes in float32.
int64_t kv_cache_bytes(const mamba::MambaConfig& c, int64_t length) { return 2 * c.n_layer * length * c.d_model * 4; }

// Memory against context length on log-log axes (powers of two across, powers of ten up), so
// that a constant and a line through the origin can both be seen: a straight line of slope 1 is
// memory proportional to length, a horizontal one is constant.
std::string memory_svg(const std::vector<std::pair<int64_t, double>>& mamba_kib, const std::vector<double>& kv_kib) {
  const double left = 70, top = 40, width = 550, height = 290, decades = 6;  // y from 0.1 to 10^5 KiB
  double x_max = std::log2(static_cast<double>(mamba_kib.back().first));
  auto px = [&](double length) { return left + std::log2(length) / x_max * width; };
  auto py = [&](double kib) { return top + (1 - (std::log10(kib) + 1) / decades) * height; };
  auto num = [](double v) { char b[32]; std::snprintf(b, sizeof b, "%.1f", v); return std::string(b); };
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"640\" height=\"380\" font-family=\"sans-serif\" "
                  "font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                  "<text x=\"345\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">Memory carried from token to "
                  "token (log-log)</text>\n<rect x=\"70\" y=\"40\" width=\"550\" height=\"290\" fill=\"none\" "
                  "stroke=\"#888\"/>\n";
  for (double length = 1; length <= mamba_kib.back().first; length *= 8)
    s += "<text x=\"" + num(px(length)) + "\" y=\"348\" text-anchor=\"middle\">" + std::to_string((int64_t)length) +
         "</text>\n";
  for (double kib = 0.1; kib < 2e5; kib *= 10)
    s += "<line x1=\"70\" x2=\"620\" y1=\"" + num(py(kib)) + "\" y2=\"" + num(py(kib)) + "\" stroke=\"#e5e5e5\"/>\n" +
         "<text x=\"64\" y=\"" + num(py(kib) + 4) + "\" text-anchor=\"end\">" + (kib < 1 ? "0.1" : std::to_string((int64_t)kib)) +
         "</text>\n";
  s += "<text x=\"345\" y=\"370\" text-anchor=\"middle\">tokens in the context</text>\n";
  s += "<text transform=\"translate(16,185) rotate(-90)\" text-anchor=\"middle\">KiB</text>\n";
  auto line = [&](const std::vector<double>& ys, const char* color, const char* label, double legend_y) {
    std::string d;
    for (size_t i = 0; i < ys.size(); ++i) d += (i ? " L" : "M") + num(px(mamba_kib[i].first)) + "," + num(py(ys[i]));
    s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
    s += "<line x1=\"90\" x2=\"114\" y1=\"" + num(legend_y) + "\" y2=\"" + num(legend_y) + "\" stroke=\"" + color +
         "\" stroke-width=\"2\"/>\n<text x=\"120\" y=\"" + num(legend_y + 4) + "\">" + label + "</text>\n";
  };
  std::vector<double> state;
  for (auto [length, kib] : mamba_kib) state.push_back(kib);
  line(kv_kib, "#d62728", "KV cache of a same-width transformer (formula)", 60);
  line(state, "#1f77b4", "Mamba's recurrent state (measured)", 78);
  return s + "</svg>\n";
}
}  // namespace

int lesson() {
  set_num_threads(1);  // one token at a time is too little work to share between threads
  mamba::MambaConfig config;  // the defaults: d_model 128, n_layer 4, d_state 16, d_conv 4, vocab 65
  Generator gen(0);
  mamba::MambaLM model(config, gen);
  // Untrained logits are tiny (the tied head has std 0.02); wider embeddings make them O(10), as
  // a trained model's are, so that "equal within 1e-4" below says something.
  nn::init::normal_(model.backbone->embeddings->weight, 0.0, 0.1, gen);
  model.eval();
  NoGradGuard no_grad;
  const int64_t V = config.vocab_size;

  std::printf("1. The state: one (conv, ssm) pair per layer\n");
  mamba::InferenceState state = model.new_state(1);
  for (size_t i = 0; i < state.layers.size(); ++i)
    std::printf("  layer %zu: conv_state %s, ssm_state %s\n", i, str(state.layers[i].conv_state.shape()).c_str(),
                str(state.layers[i].ssm_state.shape()).c_str());
  int64_t expected = config.n_layer * config.d_inner() * (config.d_conv + config.d_state) * 4;
  std::printf("  %ld bytes = n_layer * d_inner * (d_conv + N) * 4 = %ld\n", (long)state_bytes(state), (long)expected);
  check(state_bytes(state) == expected, "state size matches the formula");

  std::printf("\n2. Prefill in parallel, then step: the same logits as one full forward\n");
  const int64_t L = 64, prefill = 16;
  Tensor tokens = randint(0, V, {1, L}, gen);
  Tensor full = model.forward(tokens);  // (1, L, V): every position at once
  mamba::InferenceState s;
  Tensor first = model.forward(narrow(tokens, 1, 0, prefill), &s);  // (1, 16, V), leaves the state in s
  double diff = max_abs_diff(first, narrow(full, 1, 0, prefill));
  std::vector<int64_t> ids = tokens.to_vector<int64_t>();
  mamba::InferenceState from_zero = model.new_state(1);
  double diff_zero = 0;
  for (int64_t t = 0; t < L; ++t) {
    Tensor expect = narrow(full, 1, t, 1).reshape({1, V});
    if (t >= prefill) {
      Tensor got = model.step(tensor({ids[t]}), s);  // (1, V)
      diff = std::max(diff, max_abs_diff(got, expect));
    }
    Tensor got_zero = model.step(tensor({ids[t]}), from_zero);  // no prefill: every token a step
    diff_zero = std::max(diff_zero, max_abs_diff(got_zero, expect));
  }
  double scale = max_abs_diff(full, zeros_like(full));
  std::printf("  logits up to %.1f in size; max |difference|: prefill %ld + %ld steps %.2e, %ld steps from zero %.2e\n",
              scale, (long)prefill, (long)(L - prefill), diff, (long)L, diff_zero);
  check(diff < 1e-4 && diff_zero < 1e-4, "step-by-step logits equal the full forward's within 1e-4");
  check(scale > 1, "the logits compared are not trivially small");

  std::printf("\n3. Cost per token as the context grows (one sequence, one thread)\n");
  const std::vector<int64_t> lengths = {256, 512, 1024, 2048, 4096};
  std::vector<double> speeds, mamba_kib;
  std::vector<std::pair<int64_t, double>> memory;  // (length, state KiB) at every power of two
  mamba::InferenceState running = model.new_state(1);
  int64_t position = 0, next = 0;
  for (int64_t length : lengths) {
    // Advance to `length`, timing the last 256 tokens in chunks of 16; the fastest chunk is the
    // least disturbed by whatever else runs on the machine.
    double best = 1e9;
    while (position < length) {
      auto start = Clock::now();
      for (int k = 0; k < 16; ++k) {
        Tensor logits = model.step(tensor({next}), running);  // (1, V); feed back the argmax
        next = argmax(logits, 1).item<int64_t>();
        ++position;
        if ((position & (position - 1)) == 0) memory.emplace_back(position, state_bytes(running) / 1024.0);  // powers of 2
      }
      if (position > length - 256) best = std::min(best, seconds_since(start) / 16);
    }
    speeds.push_back(1 / best);
    mamba_kib.push_back(state_bytes(running) / 1024.0);
  }
  std::printf("  %7s  %12s  %14s  %18s  %22s\n", "length", "step tok/s", "Mamba state", "KV cache (same d)",
              "rerun the prefix");
  for (size_t i = 0; i < lengths.size(); ++i) {
    // Without a state, each new token would mean running the whole prefix again.
    auto start = Clock::now();
    model.forward(randint(0, V, {1, lengths[i]}, gen));
    double recompute = seconds_since(start);
    std::printf("  %7ld  %12.0f  %10.1f KiB  %14.0f KiB  %19.1f ms\n", (long)lengths[i], speeds[i], mamba_kib[i],
                kv_cache_bytes(config, lengths[i]) / 1024.0, recompute * 1e3);
  }
  check(mamba_kib.front() == mamba_kib.back() && state_bytes(running) == expected, "the state does not grow");
  // (The timings are printed, not checked: a test must not fail because the machine is busy. The
  // flat time per token is measured by benchmarks/models/mamba_step_bench.cpp, BM_step_after.)
  std::printf("  the state equals the KV cache of %.0f tokens\n", expected / (kv_cache_bytes(config, 1) * 1.0));

  std::vector<double> kv_curve;
  for (auto [length, kib] : memory) kv_curve.push_back(kv_cache_bytes(config, length) / 1024.0);
  std::ofstream("memory.svg") << memory_svg(memory, kv_curve);
  std::printf("\nwrote memory.svg\n");
  std::printf(g_failed ? "some checks FAILED\n" : "all checks passed\n");
  return g_failed ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
