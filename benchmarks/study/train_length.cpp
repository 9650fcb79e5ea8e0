// Part 3 of the study: one training step (forward, loss, backward, clipping, AdamW) at each
// sequence length L with a fixed number of tokens per step (batch = tokens / L), and the fitted
// exponent p of the cost per sequence ~ L^p: about 1 where the cost per token does not depend on
// L (Mamba's scan), approaching 2 where attention's L^2 dominates.
#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "mambagrad.h"
#include "study.h"
#include "timeline.h"

namespace mg::study {

namespace {

using nlohmann::json;

struct StepCost {
  double seconds = 0;      // the median step
  int64_t peak_bytes = 0;  // on a GPU: the most memory in tensors at once during the timed steps
};

// Training steps on (batch, seq_len) random tokens: `warmup` untimed (kernels load, memory is
// cached, AdamW's state is made), then `repeats` timed back to back. On a GPU the host queues the
// steps without waiting (as the trainer does); the events between them time each step.
StepCost train_step_cost(LanguageModel& model, int64_t batch, int64_t seq_len, const TrainLengthOptions& o,
                         Device device) {
  Generator gen(1);
  optim::AdamW optimizer(optim::weight_decay_groups(model.named_parameters(), 1e-4, 0.1), {});
  TensorList leaves = model.parameters();
  Tensor tokens = randint(0, model.vocab_size(), {batch, seq_len + 1}, gen);
  Tensor inputs = contiguous(narrow(tokens, 1, 0, seq_len)).to(device);   // (B, L)
  Tensor targets = contiguous(narrow(tokens, 1, 1, seq_len)).to(device);  // (B, L)
  auto step = [&] {
    Tensor loss = model.loss(inputs, targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(leaves, 1.0);
    optimizer.step();
  };
  for (int i = 0; i < o.warmup; ++i) step();
  if (device.is_cuda()) {
    cuda::synchronize(device.index);
    cuda::reset_peak_memory_stats(device.index);
  }
  Timeline timeline(device);
  timeline.mark();
  for (int i = 0; i < o.repeats; ++i) {
    step();
    timeline.mark();
  }
  std::vector<double> times;
  for (int i = 0; i < o.repeats; ++i) times.push_back(timeline.seconds(i, i + 1));
  StepCost cost{.seconds = median(times)};
  if (device.is_cuda()) cost.peak_bytes = cuda::memory_stats(device.index).peak_allocated_bytes;
  return cost;
}

}  // namespace

void train_length(const ModelPair& pair, const TrainLengthOptions& o, Device device, const Output& out) {
  MG_CHECK(!o.lengths.empty() && o.repeats >= 1 && o.warmup >= 0, "train-length: need lengths, repeats >= 1 and "
           "warmup >= 0");
  for (int64_t L : o.lengths)
    MG_CHECK(L >= 1 && o.tokens % L == 0, "train-length: --tokens ", o.tokens, " is not a multiple of L = ", L);
  const int64_t longest = *std::max_element(o.lengths.begin(), o.lengths.end());
  json results = {{"part", "train_length"}, {"device", device.str()}, {"where", describe_device(device)},
                  {"models", pair.name}, {"tokens_per_step", o.tokens}, {"lengths", o.lengths},
                  {"warmup", o.warmup}, {"repeats", o.repeats}, {"runs", json::array()}};
  std::vector<std::string> failed;
  for (const std::string kind : {"mamba", "gpt"}) {
    const std::string name = kind == "mamba" ? "Mamba" : "GPT";
    json& entry = results["runs"].emplace_back(json{{"label", name}, {"kind", kind}, {"seconds_per_sequence", json::array()},
                                                    {"seconds_per_step", json::array()}});
    if (device.is_cuda()) entry["peak_allocated_bytes"] = json::array();
    try {
      Generator gen(0);
      std::shared_ptr<LanguageModel> model = make_study_model(kind, pair, longest, device, gen);
      entry["config"] = json::parse(model->config_json());
      entry["parameters"] = model->num_parameters();
      for (int64_t L : o.lengths) {
        const int64_t batch = o.tokens / L;
        try {
          const StepCost cost = train_step_cost(*model, batch, L, o, device);
          entry["seconds_per_step"].push_back({L, cost.seconds});
          entry["seconds_per_sequence"].push_back({L, cost.seconds / static_cast<double>(batch)});
          if (device.is_cuda()) entry["peak_allocated_bytes"].push_back({L, cost.peak_bytes});
          std::printf("train-length %s: L %5ld, batch %3ld: %.4f s per step, %.1fk tokens/s", name.c_str(),
                      static_cast<long>(L), static_cast<long>(batch), cost.seconds,
                      static_cast<double>(o.tokens) / cost.seconds / 1000);
          if (device.is_cuda()) std::printf(", peak %s", format_bytes(static_cast<double>(cost.peak_bytes)).c_str());
          std::printf("\n");
        } catch (const Error& e) {  // out of memory at a long L, say: the shorter ones still count
          entry["failed"][str(L)] = e.what();
          failed.push_back(format("%s at L = %ld", name.c_str(), static_cast<long>(L)));
          std::printf("train-length %s: L %5ld failed: %s\n", name.c_str(), static_cast<long>(L), e.what());
        }
        std::fflush(stdout);
        out.write(out.file("train_length", "json"), results.dump(1));  // after every length
      }
    } catch (const Error& e) {  // the model itself could not be made
      entry["error"] = e.what();
      failed.push_back(name);
      std::printf("train-length %s: failed: %s\n", name.c_str(), e.what());
      out.write(out.file("train_length", "json"), results.dump(1));
    }
  }
  report(results, out);
  MG_CHECK(failed.empty(), "train-length: ", failed.size(), " measurements failed (", failed.front(),
           " first; their errors are in ", (out.dir / out.file("train_length", "json")).string(), ")");
}

}  // namespace mg::study
