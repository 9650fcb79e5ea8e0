// Lesson 8: your own model with the library. A character-level GRU language model (Cho et al.
// 2014) from nn::Embedding, nn::Linear and the elementwise ops, trained on TinyShakespeare with
// the same tools as Mamba (AdamW with decay groups, gradient clipping, warmup + cosine), then
// saved to and restored from a safetensors file.
#include <mambagrad.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/common/char_tokenizer.h"
#include "apps/common/sampling.h"
#include "apps/common/text_dataset.h"
#include "nn/nn.h"
#include "ops/cpu/parallel.h"

using namespace mg;

namespace {
bool g_failed = false;
void check(bool ok, const std::string& what) {
  std::printf("  [%s] %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) std::printf("FAIL: %s\n", what.c_str()), g_failed = true;
}
}  // namespace

// ---- the model: everything it needs is in these 50 lines -------------------------------------
// A GRU cell carries h (B, H) from character to character:
//   r = sigmoid(W_r x + U_r h)          reset gate: how much of h the candidate may see
//   z = sigmoid(W_z x + U_z h)          update gate: keep the old h or take the candidate
//   n = tanh(W_n x + r * (U_n h))       the candidate state
//   h' = (1 - z) * n + z * h
// The three W's are one Linear (E -> 3H) and the three U's another (H -> 3H).
class CharGRU : public nn::Module {
 public:
  CharGRU(int64_t vocab, int64_t embed_dim, int64_t hidden_dim, Generator& gen)
      : nn::Module("CharGRU"), hidden_dim(hidden_dim) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(vocab, embed_dim, gen));
    input = register_module("input", std::make_shared<nn::Linear>(embed_dim, 3 * hidden_dim, gen));
    recur = register_module("recur", std::make_shared<nn::Linear>(hidden_dim, 3 * hidden_dim, gen));
    head = register_module("head", std::make_shared<nn::Linear>(hidden_dim, vocab, gen));
  }

  // One step: gx = input(embed(token)) (B, 3H), h (B, H) -> the next h (B, H).
  Tensor cell(const Tensor& gx, const Tensor& h) {
    TensorList x = chunk(gx, 3, 1), u = chunk(recur->forward(h), 3, 1);  // each (B, H)
    Tensor r = sigmoid(x[0] + u[0]), z = sigmoid(x[1] + u[1]);
    Tensor n = tanh(x[2] + r * u[2]);
    return (1.0 - z) * n + z * h;
  }

  // tokens (B, L) -> logits (B, L, vocab): the cell unrolled over time; autograd records every
  // step, so backward() is backpropagation through time.
  Tensor forward(const Tensor& tokens) {
    Tensor gx = input->forward(embed->forward(tokens));  // (B, L, 3H): all steps at once
    Tensor h = zeros({tokens.size(0), hidden_dim});
    TensorList hs;
    for (int64_t t = 0; t < tokens.size(1); ++t) {
      h = cell(narrow(gx, 1, t, 1).squeeze(1), h);
      hs.push_back(h.unsqueeze(1));
    }
    return head->forward(concat(hs, 1));  // (B, L, H) -> (B, L, vocab)
  }

  Tensor loss(const Tensor& inputs, const Tensor& targets) {
    Tensor logits = forward(inputs);
    return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
  }

  const int64_t hidden_dim;
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::Linear> input, recur, head;
};
// ------------------------------------------------------------------------------------------------

double val_loss(CharGRU& model, const std::vector<int64_t>& val) {
  NoGradGuard no_grad;
  double total = 0;
  for (int64_t i = 0; i < 4; ++i) {
    apps::Batch b = apps::fixed_batch(val, 32, 64, i, 4);
    total += model.loss(b.inputs, b.targets).item<double>();
  }
  return total / 4;
}

int lesson() {
  set_num_threads(1);  // the GRU's per-step tensors are too small to share between threads (lesson 6)
  std::string text = apps::read_text_file(apps::find_tinyshakespeare(""));
  apps::CharTokenizer tok = apps::CharTokenizer::from_text(text);
  apps::TextSplits data = apps::split_90_10(tok.encode(text));

  std::printf("1. The model's parameters, by name\n");
  Generator gen(0);
  CharGRU model(tok.size(), 32, 128, gen);
  for (const auto& [name, p] : model.named_parameters())
    std::printf("  %-14s %-12s %6ld\n", name.c_str(), str(p.shape()).c_str(), (long)p.numel());
  const int64_t V = tok.size(), E = 32, H = 128;
  int64_t expected = V * E + (E * 3 * H + 3 * H) + (H * 3 * H + 3 * H) + (H * V + V);
  std::printf("  total %ld\n", (long)model.num_parameters());
  check(model.num_parameters() == expected, "parameter count = V E + (E + 1) 3H + (H + 1) 3H + (H + 1) V");

  std::printf("\n2. Training: the loop of lesson 6, with this model\n");
  const int64_t steps = 300, batch = 32, seq_len = 32;
  optim::AdamW optimizer(optim::weight_decay_groups(model.named_parameters(), 1e-2, 0.01), {.beta2 = 0.99});
  nn::WarmupCosineSchedule schedule{.peak_lr = 1e-2, .min_lr = 1e-3, .warmup_steps = 20, .total_steps = steps};
  TensorList params = model.parameters();
  Generator batch_gen(1);
  double first = val_loss(model, data.val), window = 0;
  std::printf("  step   0: val loss %.3f\n", first);
  for (int64_t step = 0; step < steps; ++step) {
    optimizer.set_lr(schedule.lr(step));
    apps::Batch b = apps::random_batch(data.train, batch, seq_len, batch_gen);
    Tensor loss = model.loss(b.inputs, b.targets);
    optimizer.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(params, 1.0);
    optimizer.step();
    window += loss.item<double>();
    if ((step + 1) % 50 == 0) {
      std::printf("  step %3ld: train loss %.3f\n", (long)step + 1, window / 50);
      window = 0;
    }
  }
  double last = val_loss(model, data.val);
  std::printf("  val loss %.3f\n", last);
  check(std::abs(first - std::log(65.0)) < 0.3, "the untrained loss is near ln(65) = 4.17");
  check(last < 2.4, "the validation loss fell below 2.4");

  std::printf("\n3. A sample (temperature 0.8): the cell run one character at a time\n");
  {
    NoGradGuard no_grad;
    Generator sampler(1234);
    Tensor h = zeros({1, H});
    int64_t token = tok.encode("\n")[0];
    std::string out;
    for (int i = 0; i < 200; ++i) {
      h = model.cell(model.input->forward(model.embed->forward(tensor({token}))), h);  // (1, H)
      token = apps::sample_token(model.head->forward(h).reshape({-1}).to_vector<float>(), {.temperature = 0.8}, sampler);
      out += tok.decode(token);
    }
    std::printf("    | ");
    for (char c : out) c == '\n' ? std::printf("\n    | ") : std::printf("%c", c);
    std::printf("\n");
  }

  std::printf("\n4. Save, and load into a fresh model\n");
  nn::save_safetensors("char_gru.safetensors", model.state_dict(), {{"vocabulary", tok.vocabulary()}});
  nn::SafetensorsContents file = nn::load_safetensors("char_gru.safetensors");
  std::printf("  char_gru.safetensors holds %zu tensors; vocabulary of %zu characters in its metadata\n",
              file.tensors.size(), file.metadata["vocabulary"].size());
  Generator other(99);
  CharGRU restored(V, E, H, other);  // different random weights ...
  double before = val_loss(restored, data.val);
  restored.load_state_dict(file.tensors);  // ... replaced by the saved ones
  double after = val_loss(restored, data.val);
  std::printf("  fresh model val loss %.3f; after load_state_dict %.3f (trained model: %.3f)\n", before, after, last);
  check(after == last, "the restored model computes exactly the trained model's loss");

  std::printf(g_failed ? "\nsome checks FAILED\n" : "\nall checks passed\n");
  return g_failed ? 1 : 0;
}

int main() { return mg::run_main(lesson); }  // an escaped error: one "error:" line, exit 1
