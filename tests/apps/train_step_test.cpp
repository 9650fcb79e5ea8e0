// The training step (apps/common/train_step.h): on the CPU the batch's two halves run side by
// side on two threads. Its results must not depend on the thread count, and its math must be the
// whole batch's. The two threads' passes share the model's parameters: a ThreadSanitizer build
// (clang -fsanitize=thread, run with OMP_TOOL_LIBRARIES=/usr/lib/llvm-14/lib/libarcher.so so that
// it sees OpenMP's synchronization) runs these tests clean (benchmarks/RESULTS.md, 2026-12-02,
// "the step split into two halves").
#include <cstring>
#include <functional>
#include <memory>

#include "apps/common/train_step.h"
#include "models/gpt/model.h"
#include "models/mamba/model.h"
#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg::apps {
namespace {

constexpr int64_t kVocab = 17;

// Small models whose kernels still split work into several chunks (L > 64: the scan's chunk
// boundaries; rows beyond one block of the row-wise kernels).
std::shared_ptr<LanguageModel> small_mamba() {
  mamba::MambaConfig c;
  c.d_model = 32, c.n_layer = 2, c.d_state = 8, c.vocab_size = kVocab;
  Generator gen(7);
  return std::make_shared<mamba::MambaLM>(c, gen);
}

std::shared_ptr<LanguageModel> small_gpt(double dropout) {
  gpt::GPTConfig c;
  c.n_embd = 32, c.n_layer = 2, c.n_head = 4, c.vocab_size = kVocab, c.n_positions = 80, c.dropout = dropout;
  Generator gen(7);
  return std::make_shared<gpt::GPT>(c, gen);
}

using ModelFactory = std::function<std::shared_ptr<LanguageModel>()>;

struct Batch {
  Tensor inputs, targets;  // (B, L) int64
};

Batch random_batch(int64_t batch, int64_t seq_len, uint64_t seed) {
  Generator gen(seed);
  Tensor tokens = randint(0, kVocab, {batch, seq_len + 1}, gen);
  return {contiguous(narrow(tokens, 1, 0, seq_len)), contiguous(narrow(tokens, 1, 1, seq_len))};
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  Tensor ca = contiguous(a), cb = contiguous(b);
  return ca.shape() == cb.shape() && ca.dtype() == cb.dtype() &&
         std::memcmp(ca.raw_data(), cb.raw_data(), static_cast<size_t>(ca.nbytes())) == 0;
}

// What a few training steps leave: each step's loss, the last step's gradients, the parameters.
struct Trajectory {
  std::vector<Tensor> losses;
  TensorList gradients, params;
};

Trajectory train_steps(const ModelFactory& make_model, int threads, BatchSplit split, int64_t batch) {
  const int before = get_num_threads();
  set_num_threads(threads);
  std::shared_ptr<LanguageModel> model = make_model();
  optim::AdamW optimizer(optim::weight_decay_groups(model->named_parameters(), 1e-2, 0.1), {});
  TensorList params = model->parameters();
  Trajectory t;
  for (uint64_t step = 0; step < 3; ++step) {
    Batch b = random_batch(batch, 72, 100 + step);
    t.losses.push_back(train_step(*model, optimizer, params, b.inputs, b.targets, 1.0, split).loss);
  }
  for (const Tensor& p : params) {
    t.gradients.push_back(p.grad().defined() ? p.grad().clone() : Tensor());
    t.params.push_back(p.clone());
  }
  set_num_threads(before);
  return t;
}

void expect_same_bits(const Trajectory& a, const Trajectory& b) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i)
    EXPECT_TRUE(same_bits(a.losses[i], b.losses[i])) << "step " << i << ": " << a.losses[i].item<double>() << " vs "
                                                      << b.losses[i].item<double>();
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_TRUE(same_bits(a.gradients[i], b.gradients[i])) << "gradient of parameter " << i;
    EXPECT_TRUE(same_bits(a.params[i], b.params[i])) << "parameter " << i;
  }
}

struct Case {
  const char* name;
  ModelFactory make_model;
};

std::vector<Case> cases() {
  return {{"mamba", small_mamba}, {"gpt", [] { return small_gpt(0.0); }}, {"gpt_dropout", [] { return small_gpt(0.2); }}};
}

// One thread runs the halves one after the other; two run them at once, each op inside serial.
// Both must give the same bits after a few AdamW steps: losses, gradients and parameters.
TEST(TrainStep, HalvesGiveTheSameBitsOnOneAndTwoThreads) {
  for (const Case& c : cases()) {
    for (int64_t batch : {4, 5}) {
      SCOPED_TRACE(std::string(c.name) + " batch " + std::to_string(batch));
      expect_same_bits(train_steps(c.make_model, 1, BatchSplit::halves, batch),
                       train_steps(c.make_model, 2, BatchSplit::halves, batch));
    }
  }
}

// The trainer's choice on the CPU is the halves.
TEST(TrainStep, AutomaticIsTheHalvesOnTheCpu) {
  expect_same_bits(train_steps(small_mamba, 2, BatchSplit::automatic, 4),
                   train_steps(small_mamba, 1, BatchSplit::halves, 4));
}

// The halves' loss and gradients are the whole batch's, in float64 to float64 tolerance: even and
// odd batches (halves of unequal size weighted by their rows) and a batch of one row.
TEST(TrainStep, HalvesEqualTheWholeBatch) {
  for (const Case& c : cases()) {
    if (std::string(c.name) == "gpt_dropout") continue;  // different masks by design: see below
    for (int64_t batch : {1, 4, 5}) {
      SCOPED_TRACE(std::string(c.name) + " batch " + std::to_string(batch));
      std::shared_ptr<LanguageModel> model = c.make_model();
      model->to(DType::Float64);
      TensorList params = model->parameters();
      Batch b = random_batch(batch, 72, 3);
      LossAndGradients halves = loss_and_gradients(*model, b.inputs, b.targets, params, BatchSplit::halves);
      LossAndGradients whole = loss_and_gradients(*model, b.inputs, b.targets, params, BatchSplit::whole);
      EXPECT_TRUE(test::all_close(halves.loss, whole.loss));
      ASSERT_EQ(halves.gradients.size(), params.size());
      for (size_t i = 0; i < params.size(); ++i) {
        ASSERT_TRUE(whole.gradients[i].defined()) << "parameter " << i;
        EXPECT_TRUE(test::all_close(halves.gradients[i], whole.gradients[i])) << "gradient of parameter " << i;
        EXPECT_FALSE(params[i].grad().defined()) << "loss_and_gradients wrote parameter " << i << "'s .grad";
      }
    }
  }
}

// With dropout each half draws its masks from its own generator (seeded from the model's), so the
// halves' loss is a different draw from the whole batch's, but the same draw on every thread
// count (above), and the model's generator advances by the same two draws a step.
TEST(TrainStep, DropoutHalvesAdvanceTheModelsGeneratorByTwoDraws) {
  std::shared_ptr<LanguageModel> model = small_gpt(0.2);
  Generator expected = *model->training_generator();
  expected.next_u64(), expected.next_u64();
  Batch b = random_batch(4, 8, 3);
  loss_and_gradients(*model, b.inputs, b.targets, model->parameters(), BatchSplit::halves);
  EXPECT_EQ(model->training_generator()->state(), expected.state());
}

TEST(TrainStep, RejectsABatchThatIsNotTwoDimensional) {
  std::shared_ptr<LanguageModel> model = small_mamba();
  Tensor tokens = zeros({8}, TensorOptions{}.with_dtype(DType::Int64));
  EXPECT_TRUE(test::throws_error([&] { loss_and_gradients(*model, tokens, tokens, model->parameters()); },
                                 "train_step: inputs [8]", "must both be (B, L)"));
  Tensor empty = zeros({0, 4}, TensorOptions{}.with_dtype(DType::Int64));
  EXPECT_TRUE(test::throws_error([&] { loss_and_gradients(*model, empty, empty, model->parameters()); },
                                 "train_step: an empty batch"));
}

}  // namespace
}  // namespace mg::apps
