#include "apps/common/train_step.h"

#include <exception>
#include <optional>

#include "autograd/engine.h"
#include "nn/clip_grad.h"
#include "ops/binary.h"
#include "ops/cpu/parallel.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::apps {

namespace {

// This thread's OpenMP team size for the scope's lifetime (an ICV of the calling thread only).
class ThreadCountScope {
 public:
  explicit ThreadCountScope(int threads) : previous_(get_num_threads()) { set_num_threads(threads); }
  ~ThreadCountScope() { set_num_threads(previous_); }
  ThreadCountScope(const ThreadCountScope&) = delete;
  ThreadCountScope& operator=(const ThreadCountScope&) = delete;

 private:
  int previous_;
};

// One half of a batch: its rows, its weight in the batch's mean, what its pass produced.
struct Half {
  Tensor inputs, targets;  // (B_k, L)
  double weight = 1;       // B_k / B
  std::optional<Generator> dropout_gen;  // set when the model draws while training
  Tensor loss;             // 0-d, detached: the half's mean loss (unweighted)
  TensorList gradients;    // of weight * loss
  std::exception_ptr error;
};

// Forward and backward of one half; never throws (it may run inside an OpenMP region).
void run_half(LanguageModel& model, const TensorList& params, Half& half) {
  try {
    std::optional<GeneratorRedirect> redirect;
    if (half.dropout_gen) redirect.emplace(*model.training_generator(), *half.dropout_gen);
    Tensor loss = model.loss(half.inputs, half.targets);
    Tensor seed = full({}, half.weight, TensorOptions{}.with_dtype(loss.dtype()).with_device(loss.device()));
    half.gradients = gradients({loss}, {seed}, params);
    half.loss = loss.detach();
  } catch (...) {
    half.error = std::current_exception();
  }
}

LossAndGradients halves_loss_and_gradients(LanguageModel& model, const Tensor& inputs, const Tensor& targets,
                                           const TensorList& params) {
  const int64_t batch = inputs.size(0);
  MG_CHECK(batch > 0, "train_step: an empty batch (inputs ", inputs.shape(), ")");
  // Rows [0, first) and [first, batch); a batch of one row is one "half".
  const int64_t first = (batch + 1) / 2;
  std::vector<Half> halves(batch > 1 ? 2 : 1);
  Generator* model_gen = model.training_generator();
  for (size_t k = 0; k < halves.size(); ++k) {
    const int64_t begin = k == 0 ? 0 : first, rows = k == 0 ? std::min(first, batch) : batch - first;
    halves[k].inputs = contiguous(narrow(inputs, 0, begin, rows));
    halves[k].targets = contiguous(narrow(targets, 0, begin, rows));
    halves[k].weight = static_cast<double>(rows) / static_cast<double>(batch);
    if (model_gen != nullptr) halves[k].dropout_gen.emplace(model_gen->next_u64());
  }
  if (halves.size() == 2 && get_num_threads() == 2) {
    // The one parallel region of the step. Inside it each thread's ops run serially (parallel_for
    // and Eigen's GEMM stay on one thread inside an active region; the ICV set here also covers a
    // team that OMP_DYNAMIC shrank to one thread, which then runs both halves in order).
#ifdef _OPENMP
#pragma omp parallel num_threads(2)
    {
      ThreadCountScope serial(1);
      for (int k = omp_get_thread_num(); k < 2; k += omp_get_num_threads()) run_half(model, params, halves[k]);
    }
#endif
  } else {
    for (Half& half : halves) run_half(model, params, half);
  }
  for (const Half& half : halves)
    if (half.error) std::rethrow_exception(half.error);

  LossAndGradients result;
  result.loss = halves.size() == 1 ? halves[0].loss
                                   : add(mul(halves[0].loss, halves[0].weight), mul(halves[1].loss, halves[1].weight));
  result.gradients.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& g0 = halves[0].gradients[i];
    const Tensor g1 = halves.size() == 2 ? halves[1].gradients[i] : Tensor();
    // A fresh tensor in every case: clipping and the optimizer scale .grad in place, and a
    // gradient the engine returned may share storage with another's.
    if (g0.defined() && g1.defined()) result.gradients[i] = add(g0, g1);
    else if (g0.defined() || g1.defined()) result.gradients[i] = (g0.defined() ? g0 : g1).clone();
  }
  return result;
}

}  // namespace

LossAndGradients loss_and_gradients(LanguageModel& model, const Tensor& inputs, const Tensor& targets,
                                    const TensorList& params, BatchSplit split) {
  MG_CHECK(inputs.dim() == 2 && targets.shape() == inputs.shape(), "train_step: inputs ", inputs.shape(),
           " and targets ", targets.shape(), " must both be (B, L)");
  if (split == BatchSplit::automatic) split = inputs.device().is_cpu() ? BatchSplit::halves : BatchSplit::whole;
  if (split == BatchSplit::halves) return halves_loss_and_gradients(model, inputs, targets, params);
  Tensor loss = model.loss(inputs, targets);
  return {loss.detach(), gradients({loss}, {Tensor()}, params)};
}

StepResult train_step(LanguageModel& model, optim::Optimizer& optimizer, const TensorList& params, const Tensor& inputs,
                      const Tensor& targets, double clip, BatchSplit split) {
  if (split == BatchSplit::automatic) split = inputs.device().is_cpu() ? BatchSplit::halves : BatchSplit::whole;
  StepResult result;
  std::optional<ThreadCountScope> serial;
  if (split == BatchSplit::whole) {  // the step as it always was (the GPU's)
    Tensor loss = model.loss(inputs, targets);
    optimizer.zero_grad();
    loss.backward();
    result.loss = loss.detach();
  } else {
    LossAndGradients lg = loss_and_gradients(model, inputs, targets, params, split);
    optimizer.zero_grad();
    for (size_t i = 0; i < params.size(); ++i)
      if (lg.gradients[i].defined()) Tensor(params[i]).set_grad(lg.gradients[i]);
    result.loss = lg.loss;
    // The rest of the step (norm, clip, the update: elementwise passes over the parameters, ~1%
    // of the step) on this thread alone: parallel, each of its regions would be another join to
    // wait at on a busy machine. The values are the same either way (fixed chunks).
    if (get_num_threads() <= 2) serial.emplace(1);
  }
  result.grad_norm = clip > 0 ? nn::clip_grad_norm_(params, clip) : nn::grad_norm(params);
  optimizer.step();
  return result;
}

}  // namespace mg::apps
