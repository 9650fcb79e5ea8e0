// The fused step op (ops/mamba_step.h), as MambaLM::step runs it, against the composed step
// (MambaLM::step_composed, library ops): logits and both states after every step, at awkward sizes, both dtypes, batch 1
// and 3, with every optional bias on and off and parameters moved off their structured init.
#include "models/mamba/model.h"
#include "ops/mamba_step.h"
#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

using mamba::InferenceState;
using mamba::MambaConfig;
using mamba::MambaLM;

// Every parameter gets noise, so A, D, the biases and the norms are not their special init values
// (A = -(1..N), D = 1, zero biases, unit norms) that could hide an indexing mistake.
void perturb(MambaLM& model, uint64_t seed) {
  NoGradGuard no_grad;
  uint64_t k = 0;
  for (auto& [name, parameter] : model.named_parameters())
    add_inplace(parameter, test::random(parameter.shape(), seed + k++, parameter.dtype(), false, -0.3, 0.3));
}

InferenceState copy_of(const InferenceState& state) {
  InferenceState copy;
  for (const mamba::MixerState& layer : state.layers)
    copy.layers.push_back({layer.conv_state.clone(), layer.ssm_state.clone(), Tensor()});
  return copy;
}

struct Case {
  const char* name;
  MambaConfig config;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  MambaConfig odd;  // nothing a multiple of 8; in_proj and out_proj biases on, the conv's off
  odd.d_model = 13, odd.n_layer = 3, odd.vocab_size = 11, odd.d_state = 5, odd.d_conv = 3, odd.dt_rank = 3;
  odd.bias = true, odd.conv_bias = false;
  out.push_back({"odd sizes, in/out biases, no conv bias", odd});
  MambaConfig mamba;  // Mamba's N = 16 (the kernel's unrolled lanes), d_conv 4
  mamba.d_model = 24, mamba.n_layer = 2, mamba.vocab_size = 7, mamba.pad_vocab_size_multiple = 8;
  out.push_back({"N = 16, padded vocabulary", mamba});
  MambaConfig wide;  // N over one block of lanes; one conv tap; expand 1
  wide.d_model = 9, wide.n_layer = 1, wide.vocab_size = 5, wide.d_state = 17, wide.d_conv = 1, wide.expand = 1;
  out.push_back({"N = 17, d_conv 1, expand 1", wide});
  MambaConfig blocks;  // d_inner 280: channel blocks of 128, 128 and 24 (split across threads)
  blocks.d_model = 140, blocks.n_layer = 2, blocks.vocab_size = 9;
  out.push_back({"three channel blocks", blocks});
  return out;
}

TEST(FusedStep, MatchesTheComposedStepEveryStep) {
  for (const Case& c : cases())
    for (DType dtype : {DType::Float64, DType::Float32})
      for (int64_t batch : {1, 3}) {
        SCOPED_TRACE(std::string(c.name) + ", " + dtype_name(dtype) + ", batch " + std::to_string(batch));
        Generator gen(21);
        MambaLM model(c.config, gen);
        model.to(dtype);
        perturb(model, 100);
        // float32: rounding of different summation orders, grown over 16 steps through 2-3 layers.
        const double tol = dtype == DType::Float64 ? 1e-12 : 1e-4;
        const int64_t vocab = c.config.vocab_size;
        // Start from a prompt's states, so the conv windows and SSM states are not zeros.
        InferenceState fused;
        model.forward(randint(0, vocab, {batch, 4}, gen), &fused);
        InferenceState composed = copy_of(fused);
        ASSERT_TRUE(mamba_step_supported(model.fused_step_inputs(fused)));
        for (int64_t t = 0; t < 12; ++t) {
          Tensor tokens = randint(0, vocab, {batch}, gen);
          Tensor expected = model.step_composed(tokens, composed);
          Tensor actual = model.step(tokens, fused);
          ASSERT_TRUE(test::all_close(actual, expected, tol, tol)) << "logits, step " << t;
          for (size_t i = 0; i < fused.layers.size(); ++i) {
            ASSERT_TRUE(test::all_close(fused.layers[i].conv_state, composed.layers[i].conv_state, tol, tol))
                << "conv state, layer " << i << ", step " << t;
            ASSERT_TRUE(test::all_close(fused.layers[i].ssm_state, composed.layers[i].ssm_state, tol, tol))
                << "ssm state, layer " << i << ", step " << t;
          }
        }
      }
}

// Threads split the channel blocks; sums over channels are added block by block in a fixed order,
// so the thread count must not change a single bit, even when it changes from one step to the
// next (the workspace is then re-carved for the new team). CTest also runs this test with
// OMP_THREAD_LIMIT=1 and with OMP_DYNAMIC=true, where OpenMP may form a smaller team than asked.
TEST(FusedStep, ResultsDoNotDependOnTheThreadCount) {
  const int saved_threads = get_num_threads();
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    Generator gen(24);
    MambaLM model(cases()[3].config, gen);
    model.to(dtype);
    perturb(model, 200);
    Tensor tokens = randint(0, 9, {2, 7}, gen);
    auto token = [&](int64_t t) { return contiguous(narrow(tokens, 1, t, 1).squeeze(1)); };
    set_num_threads(1);
    InferenceState single = model.new_state(2);
    std::vector<std::vector<double>> reference;
    for (int64_t t = 0; t < tokens.size(1); ++t) reference.push_back(model.step(token(t), single).to_vector<double>());
    for (int threads : {2, 3}) {
      set_num_threads(threads);
      InferenceState state = model.new_state(2);
      for (int64_t t = 0; t < tokens.size(1); ++t)
        EXPECT_EQ(model.step(token(t), state).to_vector<double>(), reference[t]) << threads << " threads, step " << t;
    }
    InferenceState changing = model.new_state(2);
    for (int64_t t = 0; t < tokens.size(1); ++t) {
      set_num_threads(1 + static_cast<int>(t % 3));
      EXPECT_EQ(model.step(token(t), changing).to_vector<double>(), reference[t]) << "changing threads, step " << t;
    }
  }
  set_num_threads(saved_threads);
}

// A caller may step several sequences from its own threads. Inside its parallel region the step
// runs serially and must not wait at a barrier of the caller's team: with uneven numbers of steps
// per thread, that would hang.
TEST(FusedStep, StepsFromInsideTheCallersOwnParallelRegion) {
  Generator gen(25);
  MambaLM model(cases()[3].config, gen);
  const std::vector<int64_t> steps = {1, 6, 11};
  std::vector<Tensor> expected, actual(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    InferenceState state = model.new_state(1);
    Tensor logits;
    for (int64_t t = 0; t < steps[i]; ++t) logits = model.step(tensor({int64_t(t % 9)}), state);
    expected.push_back(logits);
  }
  std::vector<InferenceState> states;
  for (size_t i = 0; i < steps.size(); ++i) states.push_back(model.new_state(1));
#pragma omp parallel for num_threads(2) schedule(static, 1)
  for (size_t i = 0; i < steps.size(); ++i)
    for (int64_t t = 0; t < steps[i]; ++t) actual[i] = model.step(tensor({int64_t(t % 9)}), states[i]);
  for (size_t i = 0; i < steps.size(); ++i)
    EXPECT_EQ(actual[i].to_vector<float>(), expected[i].to_vector<float>()) << "sequence " << i;
}

// A state the fused step cannot use goes to the composed step, whose ops check it and say what is
// wrong (the fused step itself only runs on what it accepts).
TEST(FusedStep, StatesItCannotUseGoToTheComposedStep) {
  Generator gen(22);
  MambaLM model(cases()[0].config, gen);
  InferenceState state = model.new_state(2);
  EXPECT_TRUE(mamba_step_supported(model.fused_step_inputs(state)));
  InferenceState strided = model.new_state(2);  // a non-contiguous SSM state
  const int64_t N = strided.layers[1].ssm_state.size(2);
  strided.layers[1].ssm_state = zeros({2, N, strided.layers[1].ssm_state.size(1)}).transpose(1, 2);
  EXPECT_FALSE(mamba_step_supported(model.fused_step_inputs(strided)));
  const Tensor tokens = tensor({int64_t{1}, int64_t{2}});
  EXPECT_TRUE(test::throws_error([&] { model.step(tokens, strided); }, "selective_scan_step", "contiguous"));
  EXPECT_TRUE(test::throws_error([&] { mamba_step(tokens, model.fused_step_inputs(strided), strided.workspace); },
                                 "mamba_step: layers[1].ssm_state", "must be contiguous"));
  InferenceState wrong_dtype = model.new_state(2);
  wrong_dtype.layers[0].conv_state = wrong_dtype.layers[0].conv_state.to(DType::Float64);
  EXPECT_FALSE(mamba_step_supported(model.fused_step_inputs(wrong_dtype)));
  EXPECT_TRUE(test::throws_error([&] { model.step(tokens, wrong_dtype); }, "causal_conv1d_step"));
  InferenceState none;
  EXPECT_FALSE(mamba_step_supported(model.fused_step_inputs(none)));
}

// The op has no CUDA kernel: it says so by name, and MambaLM::step on a GPU composes the step from
// ops instead (CudaBackend.GenerationStepsOnTheGpuMatchTheCpu compares it with the CPU).
TEST(FusedStep, OnAGpuTheOpSaysItHasNoKernelAndTheModelComposesTheStep) {
  MG_SKIP_WITHOUT_CUDA();
  Generator gen(26);
  MambaLM model(cases()[1].config, gen);
  InferenceState cpu_state = model.new_state(1);
  const Tensor cpu_logits = model.step(tensor({int64_t{3}}), cpu_state);
  model.to(Device::cuda(0));
  InferenceState state = model.new_state(1);
  EXPECT_FALSE(mamba_step_supported(model.fused_step_inputs(state)));
  EXPECT_TRUE(test::throws_error(
      [&] { mamba_step(tensor({int64_t{3}}).to(Device::cuda(0)), model.fused_step_inputs(state), state.workspace); },
      "mamba_step: no CUDA kernel yet", "cuda:0"));
  const Tensor logits = model.step(tensor({int64_t{3}}).to(Device::cuda(0)), state);
  EXPECT_EQ(logits.device(), Device::cuda(0));
  EXPECT_TRUE(test::all_close(logits.to(Device::cpu()), cpu_logits, 1e-5, 1e-4));
}

TEST(FusedStep, BadInputsAreClearErrors) {
  Generator gen(23);
  MambaLM model(cases()[0].config, gen);
  InferenceState state = model.new_state(2);
  EXPECT_TRUE(test::throws_error([&] { model.step(from_vector(std::vector<int64_t>{1, 11}, {2}), state); },
                                 "mamba_step", "outside the vocabulary"));
  EXPECT_TRUE(test::throws_error([&] { model.step(from_vector(std::vector<int64_t>{1, -1}, {2}), state); },
                                 "mamba_step", "outside the vocabulary"));
  EXPECT_TRUE(test::throws_error([&] { model.step(from_vector(std::vector<int64_t>{1, 2, 3}, {3}), state); },
                                 "mamba_step", "need states"));
  EXPECT_TRUE(test::throws_error([&] { model.step(ones({2}), state); }, "mamba_step", "int64"));
  EXPECT_TRUE(test::throws_error([&] { model.step(zeros({2, 1}, {.dtype = DType::Int64}), state); },
                                 "mamba_step", "(B)"));
  // The op reads raw memory: every tensor's shape is checked against the sizes the others give.
  MambaStepModel inputs = model.fused_step_inputs(state);
  inputs.layers[2].x_weight = zeros({3, 4});
  EXPECT_TRUE(test::throws_error([&] { mamba_step(tensor({int64_t{1}, int64_t{2}}), inputs, state.workspace); },
                                 "mamba_step: layers[2].x_weight must be", "got [3, 4]"));
}

}  // namespace
}  // namespace mg
