// The CUDA backend beyond single ops (those are in the op table, tests/ops/op_table_test.cpp):
// training a small Mamba on the GPU against the CPU, bit-identical reruns, no cudaMalloc in a
// steady training step, errors found by kernels, out-of-memory, CUDA graphs, TF32, big copies.
// Every test skips with a printed reason on a machine without a GPU.
#include "cuda/runtime.h"
#include "models/mamba/model.h"
#include "nn/clip_grad.h"
#include "nn/optim/adamw.h"
#include "test_util.h"

namespace mg {
namespace {

const Device kGpu = Device::cuda(0);

mamba::MambaConfig tiny_config() {
  mamba::MambaConfig c;
  c.d_model = 24;
  c.n_layer = 2;
  c.vocab_size = 19;
  c.d_state = 16;
  return c;
}

// A batch of token ids (B, L) in [0, vocab), drawn from `seed`.
Tensor tokens(int64_t B, int64_t L, int64_t vocab, uint64_t seed) {
  Generator gen(seed);
  return randint(0, vocab, {B, L}, gen);
}

struct TrainRun {
  std::vector<double> losses;
  nn::NamedTensors params;  // on the CPU, after the last step
};

// `steps` AdamW steps with clipping, the model built from seed 3 on the CPU, then moved.
TrainRun train(Device device, int steps) {
  Generator gen(3);
  mamba::MambaLM model(tiny_config(), gen);
  model.to(device);
  optim::AdamW opt(model.named_parameters(), 1e-2, 0.1);
  TensorList params = model.parameters();
  TrainRun run;
  for (int s = 0; s < steps; ++s) {
    Tensor x = tokens(3, 17, 19, 100 + s).to(device), y = tokens(3, 17, 19, 200 + s).to(device);
    Tensor loss = model.loss(x, y);
    opt.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(params, 0.5);
    opt.step();
    run.losses.push_back(loss.item<double>());
  }
  for (auto& [name, p] : model.named_parameters()) run.params.emplace_back(name, p.detach().to(Device::cpu()));
  return run;
}

TEST(CudaBackend, TrainingOnTheGpuFollowsTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  TrainRun cpu = train(Device::cpu(), 4), gpu = train(kGpu, 4);
  for (size_t s = 0; s < cpu.losses.size(); ++s) EXPECT_NEAR(gpu.losses[s], cpu.losses[s], 1e-4 * cpu.losses[s]) << s;
  for (size_t i = 0; i < cpu.params.size(); ++i)
    EXPECT_TRUE(test::all_close(gpu.params[i].second, cpu.params[i].second, 1e-4, 1e-3)) << cpu.params[i].first;
}

TEST(CudaBackend, TrainingRunsAreBitIdentical) {
  MG_SKIP_WITHOUT_CUDA();
  TrainRun a = train(kGpu, 3), b = train(kGpu, 3);
  EXPECT_EQ(a.losses, b.losses);
  for (size_t i = 0; i < a.params.size(); ++i)
    EXPECT_TRUE(test::all_close(a.params[i].second, b.params[i].second, 0, 0)) << a.params[i].first;
}

TEST(CudaBackend, ASteadyTrainingStepAllocatesNoDeviceMemory) {
  MG_SKIP_WITHOUT_CUDA();
  Generator gen(3);
  mamba::MambaLM model(tiny_config(), gen);
  model.to(kGpu);
  optim::AdamW opt(model.named_parameters(), 1e-2, 0.1);
  TensorList params = model.parameters();
  Tensor x = tokens(4, 33, 19, 1).to(kGpu), y = tokens(4, 33, 19, 2).to(kGpu);
  auto step = [&] {
    Tensor loss = model.loss(x, y);
    opt.zero_grad();
    loss.backward();
    nn::clip_grad_norm_(params, 1.0);
    opt.step();
    return loss;
  };
  step();
  step();
  cuda::synchronize();
  const cuda::MemoryStats before = cuda::memory_stats();
  for (int i = 0; i < 5; ++i) step();
  const double last = step().item<double>();
  const cuda::MemoryStats after = cuda::memory_stats();
  EXPECT_EQ(after.device_mallocs, before.device_mallocs) << "steps called cudaMalloc";
  EXPECT_GT(after.allocations, before.allocations);  // they did allocate, from the cache
  EXPECT_TRUE(std::isfinite(last));
  EXPECT_GE(after.peak_allocated_bytes, after.allocated_bytes);
  EXPECT_GE(after.reserved_bytes, after.allocated_bytes);
}

TEST(CudaBackend, AnIndexOutOfRangeIsReportedAtTheNextWait) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor weight = test::random({5, 3}, 1, DType::Float32).to(kGpu);
  Tensor ids = tensor({int64_t{1}, int64_t{7}, int64_t{2}}).to(kGpu);
  Tensor out = embedding(weight, ids);  // queued; the kernel finds the 7
  EXPECT_TRUE(test::throws_error([&] { out.to(Device::cpu()); }, "embedding: index 7 at position 1 is out of range for 5"));
  EXPECT_NO_THROW(cuda::synchronize());  // reported once, then cleared
  Tensor logits = test::random({2, 4}, 2, DType::Float32).to(kGpu);
  Tensor loss = cross_entropy(logits, tensor({int64_t{0}, int64_t{9}}).to(kGpu));
  EXPECT_TRUE(test::throws_error([&] { cuda::synchronize(); }, "cross_entropy: target 9 at position 1 is outside [0, 4)"));
  Tensor rows = index_select(weight, 0, tensor({int64_t{-1}}).to(kGpu));
  EXPECT_TRUE(test::throws_error([&] { rows.to(Device::cpu()); }, "index_select: index -1"));
}

TEST(CudaBackend, OutOfMemoryNamesTheTensorAndLeavesTheDeviceUsable) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor keep = ones({1000}, {.device = kGpu});
  const int64_t in_use = cuda::memory_stats().allocated_bytes;
  try {
    empty({int64_t{1} << 40}, {.device = kGpu});  // 4 TiB
    ADD_FAILURE() << "allocated 4 TiB";
  } catch (const OutOfMemoryError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("out of memory on cuda:0"), std::string::npos) << message;
    EXPECT_NE(message.find("[1099511627776] float32"), std::string::npos) << message;
    EXPECT_NE(message.find("in use by tensors"), std::string::npos) << message;
  }
  EXPECT_EQ(cuda::memory_stats().allocated_bytes, in_use);
  EXPECT_EQ(sum(keep).item<float>(), 1000.0f);
}

TEST(CudaBackend, EmptyCacheGivesUnusedMemoryBack) {
  MG_SKIP_WITHOUT_CUDA();
  { Tensor big = empty({int64_t{64} << 20}, {.device = kGpu}); }  // 256 MiB, freed into the cache
  const int64_t cached = cuda::memory_stats().reserved_bytes;
  cuda::empty_cache();
  EXPECT_LE(cuda::memory_stats().reserved_bytes, cached - (int64_t{256} << 20));
}

TEST(CudaBackend, GraphReplaysTheCapturedWorkOnNewInputs) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor x = test::random({5, 33}, 1, DType::Float32).to(kGpu);
  Tensor w = test::random({7, 33}, 2, DType::Float32).to(kGpu);
  auto work = [&] { return softmax(silu(linear(x, w)), -1); };
  work();  // loads every kernel and creates cuBLAS's handle before the capture
  Tensor out;
  cuda::Graph graph;
  graph.capture(kGpu, [&] { out = work(); });
  for (uint64_t seed : {3, 4}) {
    Tensor fresh = test::random({5, 33}, seed, DType::Float32);
    copy_inplace(x, fresh.to(kGpu));
    graph.replay();
    Tensor expected = softmax(silu(linear(fresh, w.to(Device::cpu()))), -1);
    EXPECT_TRUE(test::all_close(out, expected, 1e-6, 1e-5)) << "seed " << seed;
  }
  EXPECT_TRUE(test::throws_error([&] { graph.capture(kGpu, [&] { x.to(Device::cpu()); }); }, "cannot be captured"));
}

TEST(CudaBackend, Tf32IsOffUntilAskedFor) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor a = test::random({64, 512}, 1, DType::Float32), b = test::random({512, 64}, 2, DType::Float32);
  Tensor exact = matmul(a.to(DType::Float64), b.to(DType::Float64));
  auto max_rel_error = [&](const Tensor& c) {
    return max(abs(sub(c.to(Device::cpu()).to(DType::Float64), exact))).item<double>() / max(abs(exact)).item<double>();
  };
  EXPECT_FALSE(cuda::allow_tf32());
  EXPECT_LT(max_rel_error(matmul(a.to(kGpu), b.to(kGpu))), 1e-5);
  cuda::set_allow_tf32(true);
  const double tf32 = max_rel_error(matmul(a.to(kGpu), b.to(kGpu)));
  cuda::set_allow_tf32(false);
  EXPECT_GT(tf32, 1e-5);  // TF32 keeps 10 mantissa bits of the inputs
  EXPECT_LT(tf32, 1e-2);
}

TEST(CudaBackend, CopiesLargerThanTheStagingBuffersArriveWhole) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor host = test::random({int64_t{5} << 20}, 9, DType::Float32);  // 20 MiB: three staging pieces
  Tensor back = host.to(kGpu).to(Device::cpu());
  EXPECT_TRUE(test::all_close(back, host, 0, 0));
}

TEST(CudaBackend, GenerationStepsOnTheGpuMatchTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  Generator gen(5);
  mamba::MambaLM cpu_model(tiny_config(), gen);
  Generator gen2(5);
  mamba::MambaLM gpu_model(tiny_config(), gen2);
  gpu_model.to(kGpu);
  Tensor prompt = tokens(2, 9, 19, 7);
  mamba::InferenceState cpu_state, gpu_state;
  Tensor cpu_logits = cpu_model.forward(prompt, &cpu_state);
  Tensor gpu_logits = gpu_model.forward(prompt.to(kGpu), &gpu_state);
  EXPECT_TRUE(test::all_close(gpu_logits, cpu_logits, 1e-5, 1e-4));
  for (int t = 0; t < 5; ++t) {
    Tensor next = tokens(1, 2, 19, 30 + t).view({2});
    Tensor c = cpu_model.step(next, cpu_state), g = gpu_model.step(next.to(kGpu), gpu_state);
    EXPECT_TRUE(test::all_close(g, c, 1e-5, 1e-4)) << "step " << t;
  }
}

}  // namespace
}  // namespace mg
