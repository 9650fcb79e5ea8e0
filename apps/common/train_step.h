#pragma once
// One training step of any language model: forward, cross-entropy, backward, gradient clipping
// and the optimizer's update. The step `mambagrad train` takes (apps/common/trainer.cpp) and the
// one the training benchmarks time (benchmarks/models/train_step.h), for Mamba and GPT alike.
//
// On the CPU the batch is always split into two fixed halves of rows, and with two threads the
// halves' forward and backward passes run at once, one per thread, each op inside them serial.
// Why: the step used to run hundreds of parallel regions (every op split across the threads).
// On a machine doing other work (a laptop, a shared server: 4 runnable threads on 2 cores) the
// scheduler gives each thread slices of a few ms, and each region's join waited for whichever of
// our two threads was descheduled: 2 threads kept 20% of their idle speed beside two busy
// processes, and neither a wait policy (spinning or not) nor a single thread reached 40%
// (benchmarks/RESULTS.md, 2026-12-02). Two halves side by side join once a step, so a
// descheduled thread delays the step by its own share of work only. Idle, each thread runs
// serial kernels on half the batch, with no join to wait at.
//
// The results do not depend on the machine's load, nor on one thread against two: the halves are the same
// rows whatever runs them; each op's kernels split work in fixed chunks (so a serial run gives the
// bits a parallel one gives); each half's gradients are returned, not accumulated into shared
// .grad (autograd/engine.h: gradients()); and they are summed in a fixed order, half 0 + half 1.
// Dropout draws come from a generator per half, seeded from the model's (tensor/random.h:
// GeneratorRedirect). With more than two threads the halves run one after the other, each op
// using every thread (bits may then differ from one or two threads' where Eigen's GEMM blocks
// its work by the thread count, as they did before the split).
//
// The math is the whole batch's: the loss is the mean over all B * L positions, so half k's mean
// loss is weighted by its share of the rows, w_k = B_k / B (1/2 each for an even B; for an odd B
// the first half has one row more), and its backward is seeded with w_k, so
// grad = w_0 grad_0 + w_1 grad_1. (Every position counts: the trainer's batches ignore none.)
// On a GPU the step stays one forward and backward over the whole batch (one launch stream).
#include "models/language_model.h"
#include "nn/optim/optimizer.h"

namespace mg::apps {

enum class BatchSplit {
  automatic,  // halves on the CPU, the whole batch on a GPU: what the trainer takes
  halves,     // two halves of rows, side by side with two threads (above)
  whole,      // one forward and backward over the whole batch: the GPU's step, and the CPU's
              // before 2026-12-02 (kept for the benchmark's comparison and the tests)
};

struct LossAndGradients {
  Tensor loss;          // 0-d: the mean cross-entropy over the batch, detached
  TensorList gradients;  // one per parameter given (undefined where no gradient reached it)
};

// The batch's loss and its gradient with respect to each of `params`; no parameter's .grad is
// read or written. inputs, targets: (B, L) int64 token ids on the model's device.
LossAndGradients loss_and_gradients(LanguageModel& model, const Tensor& inputs, const Tensor& targets,
                                    const TensorList& params, BatchSplit split = BatchSplit::automatic);

struct StepResult {
  Tensor loss;       // 0-d, on the model's device: nothing waits for it
  Tensor grad_norm;  // 0-d float64: the global gradient norm before clipping
};

// One step: sets every parameter's .grad to the batch's gradient (params: the model's parameters,
// which the optimizer updates), clips the global norm to `clip` (0: off, the norm is still
// returned) and takes the optimizer's step.
StepResult train_step(LanguageModel& model, optim::Optimizer& optimizer, const TensorList& params, const Tensor& inputs,
                      const Tensor& targets, double clip, BatchSplit split = BatchSplit::automatic);

}  // namespace mg::apps
