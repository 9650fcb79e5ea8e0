// Part 2 of the study: batch-1 generation from position 1 to max_position, the time per token and
// the memory of the recurrent state / KV cache at each position (the fitted lines are report.cpp's).
// Each token is a whole generation step as a user runs it: the model's step, the argmax of the
// logits read back to the host (where a sampler would read them) and the next token, made from
// it, sent in. So every token waits for the device, and a window's time is the time a user waits
// for its tokens.
#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "apps/common/token_stepper.h"
#include "mambagrad.h"
#include "models/mamba/model.h"
#include "study.h"
#include "timeline.h"

namespace mg::study {

namespace {

using nlohmann::json;

// A batch-1 greedy generation, one token at a time.
class TokenLoop {
 public:
  virtual ~TokenLoop() = default;
  virtual int64_t next(int64_t token) = 0;  // feeds the token, returns the most likely next one
  virtual int64_t state_bytes() const = 0;  // the recurrent state / KV cache held now
  virtual void restart() = 0;               // back to an empty sequence
};

// Through the model's GenerationSession, as `mambagrad generate` runs it: Mamba's recurrent step
// (the fused step on the CPU, one library op after another on a GPU) or the GPT's KV cache.
class SessionLoop final : public TokenLoop {
 public:
  SessionLoop(LanguageModel& model, Device device) : model_(model), device_(device) { restart(); }
  int64_t next(int64_t token) override {
    Tensor input = from_vector(std::vector<int64_t>{token}, {1, 1}).to(device_);
    return argmax(session_->feed(input), -1).item<int64_t>();  // logits (1, V) -> (1)
  }
  int64_t state_bytes() const override { return session_->state_bytes(); }
  void restart() override { session_ = model_.start_generation(1); }

 private:
  LanguageModel& model_;
  Device device_;
  std::unique_ptr<GenerationSession> session_;
};

// Mamba's recurrent step replayed from a CUDA graph (apps/common/token_stepper.h): one launch per
// token. The graph reads and updates the state at fixed addresses, so restart() zeroes it in place.
class MambaGraphLoop final : public TokenLoop {
 public:
  MambaGraphLoop(mamba::MambaLM& model, Device device)
      : model_(model),
        state_(model.new_state(1)),
        stepper_([this](const Tensor& tokens) { return model_.step(tokens, state_); }, device, 1) {}
  int64_t next(int64_t token) override { return argmax(stepper_.step({token}), -1).item<int64_t>(); }
  int64_t state_bytes() const override { return state_.state_bytes(); }
  void restart() override {
    for (mamba::MixerState& layer : state_.layers)
      for (Tensor* t : {&layer.conv_state, &layer.ssm_state}) copy_inplace(*t, zeros_like(*t));
  }

 private:
  mamba::MambaLM& model_;
  mamba::InferenceState state_;
  apps::TokenStepper stepper_;
};

struct GenerationCurve {
  // (position, value) at the end of each window
  std::vector<std::pair<double, double>> seconds_per_token, state_bytes, device_bytes;
  // The greedy tokens of the first generation (the first 64), and whether every repeat generated
  // the same ones throughout: a check that restart() forgets the sequence, and, between the
  // runs of one model, that its ways of stepping compute the same thing.
  std::vector<int64_t> tokens;
  bool repeats_agree = true;
};

// The mean time per token of each window of positions, the median over `repeats` generations,
// after an untimed warm-up of one window (kernels load, the graph is captured, memory is cached).
// The token fed at each position is the argmax just read back (so every step waits for the one
// before, as in generation) mixed with the position: with random weights greedy decoding repeats
// one token forever, which would make the check of the tokens below a weak one.
GenerationCurve generation_curve(TokenLoop& loop, int64_t vocab, Device device, const GenerationOptions& o) {
  auto feedback = [vocab](int64_t argmax, int64_t position) { return (argmax + 31 * position + 7) % vocab; };
  const int64_t windows = o.max_position / o.window;
  std::vector<std::vector<double>> times(windows);  // per window, one mean per repeat
  GenerationCurve curve;
  int64_t token = 0;
  for (int64_t i = 0; i < o.window; ++i) token = feedback(loop.next(token), i);
  loop.restart();
  std::vector<int64_t> first;  // the tokens of the first repeat
  first.reserve(windows * o.window);
  for (int rep = 0; rep < o.repeats; ++rep) {
    Timeline timeline(device);
    token = 0;
    int64_t position = 0;
    timeline.mark();
    for (int64_t w = 0; w < windows; ++w) {
      for (int64_t i = 0; i < o.window; ++i, ++position) {
        const int64_t predicted = loop.next(token);
        if (rep == 0) first.push_back(predicted);
        else if (predicted != first[position]) curve.repeats_agree = false;
        token = feedback(predicted, position);
      }
      timeline.mark();
      if (rep > 0) continue;
      const double p = static_cast<double>(position);
      curve.state_bytes.emplace_back(p, static_cast<double>(loop.state_bytes()));
      if (device.is_cuda())  // everything the allocator hands out: weights, state or cache, scratch
        curve.device_bytes.emplace_back(p, static_cast<double>(cuda::memory_stats(device.index).allocated_bytes));
    }
    for (int64_t w = 0; w < windows; ++w) times[w].push_back(timeline.seconds(w, w + 1) / static_cast<double>(o.window));
    loop.restart();
  }
  for (int64_t w = 0; w < windows; ++w)
    curve.seconds_per_token.emplace_back(static_cast<double>((w + 1) * o.window), median(times[w]));
  curve.tokens.assign(first.begin(), first.begin() + std::min<int64_t>(64, static_cast<int64_t>(first.size())));
  return curve;
}

// One curve of the part: a model and the way its steps run.
struct Run {
  std::string kind, label;
  bool graph;  // Mamba's step from a CUDA graph
};

}  // namespace

void generation(const ModelPair& pair, const GenerationOptions& o, Device device, const Output& out) {
  MG_CHECK(o.window >= 1 && o.max_position >= o.window && o.repeats >= 1, "generation: need window >= 1, "
           "max position >= window and repeats >= 1, got ", o.window, ", ", o.max_position, " and ", o.repeats);
  NoGradGuard no_grad;
  // On a GPU, Mamba's fixed-shape step runs from a CUDA graph, as generation should; the same
  // step launched op by op (last: the least needed, should a run be cut short) shows how much of
  // the difference to the GPT (whose step changes shape every token, so it runs op by op) is
  // launches.
  std::vector<Run> runs{{"mamba", device.is_cuda() ? "Mamba, CUDA graph" : "Mamba", device.is_cuda()},
                        {"gpt", "GPT", false}};
  if (device.is_cuda()) runs.push_back({"mamba", "Mamba, op by op", false});

  json results = {{"part", "generation"}, {"device", device.str()}, {"where", describe_device(device)},
                  {"models", pair.name}, {"max_position", o.max_position}, {"window", o.window},
                  {"repeats", o.repeats}, {"runs", json::array()}};
  std::vector<std::string> failed;
  for (const Run& run : runs) {
    json entry = {{"label", run.label}, {"kind", run.kind}, {"cuda_graph", run.graph}};
    try {
      Generator gen(0);
      std::shared_ptr<LanguageModel> model = make_study_model(run.kind, pair, o.max_position, device, gen);
      model->eval();
      std::unique_ptr<TokenLoop> loop;
      if (run.graph) loop = std::make_unique<MambaGraphLoop>(dynamic_cast<mamba::MambaLM&>(*model), device);
      else loop = std::make_unique<SessionLoop>(*model, device);
      const GenerationCurve c = generation_curve(*loop, model->vocab_size(), device, o);
      entry["config"] = json::parse(model->config_json());
      entry["parameters"] = model->num_parameters();
      entry["seconds_per_token"] = c.seconds_per_token;
      entry["state_bytes"] = c.state_bytes;
      if (device.is_cuda()) entry["device_allocated_bytes"] = c.device_bytes;
      entry["tokens"] = c.tokens;
      entry["repeats_agree"] = c.repeats_agree;
      std::printf("generation %s: measured%s\n", run.label.c_str(),
                  c.repeats_agree ? "" : " (warning: the repeats generated different tokens)");
    } catch (const Error& e) {
      entry["error"] = e.what();
      failed.push_back(run.label);
      std::printf("generation %s: failed: %s\n", run.label.c_str(), e.what());
    }
    std::fflush(stdout);
    results["runs"].push_back(entry);
    out.write(out.file("generation", "json"), results.dump(1));  // after every run: a run cut short keeps them
  }
  report(results, out);
  MG_CHECK(failed.empty(), "generation: ", failed.size(), " of ", runs.size(), " runs failed (", failed.front(),
           " first; their errors are in ", (out.dir / out.file("generation", "json")).string(), ")");
}

}  // namespace mg::study
