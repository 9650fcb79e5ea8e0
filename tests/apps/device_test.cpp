// --device in the programs. On every machine: the flag's parsing and its errors, --tf32's, the
// repository's model configs, and a NaN named at its step although losses are read only at log
// points (on the CPU, and on a GPU when there is one). On a GPU (skipped with a printed reason
// without one): training repeats bit for bit run after run and follows the CPU, a resumed run repeats an unbroken one,
// checkpoints move between devices, and generation on the GPU (Mamba's step replayed from a CUDA
// graph, GPT's eager) follows the CPU token for token.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/common/checkpoint.h"
#include "apps/common/device_option.h"
#include "apps/common/generation.h"
#include "apps/common/model_loading.h"
#include "apps/common/trainer.h"
#include "models/mamba/config.h"
#include "tensor/factory.h"
#include "test_util.h"

namespace mg::apps {
namespace {

namespace fs = std::filesystem;

const Device kGpu = Device::cuda(0);
const fs::path kSource = fs::path(__FILE__).parent_path().parent_path().parent_path();

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("mg_device_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string text() {
  std::string t;
  for (int i = 0; i < 300; ++i) t += "the cat sat on the mat. ";
  return t;
}

// A tiny model of `kind` ("mamba" or "gpt") that trains in a fraction of a second. Progress lines
// every 3 steps, evaluations and checkpoints every 5: on a GPU the losses are read at steps 3, 5,
// 6, 9 and 10, each read covering the steps since the last.
TrainOptions tiny(const std::string& kind, Device device, const fs::path& out) {
  TrainOptions o;
  o.model_kind = kind;
  o.model.d_model = 16, o.model.n_layer = 2, o.model.d_state = 4;
  o.gpt.n_embd = 16, o.gpt.n_layer = 2, o.gpt.n_head = 2, o.gpt.n_positions = 16;
  o.steps = 10, o.batch = 4, o.seq_len = 16, o.warmup = 2, o.lr = 1e-2, o.min_lr = 1e-3;
  o.eval_every = 5, o.eval_batches = 2, o.save_every = 5, o.log_every = 3;
  o.out_dir = out.string();
  o.progress = false;
  o.device = device;
  return o;
}

// ---- every machine

TEST(DeviceFlag, ParsesCpuCudaAndCudaN) {
  EXPECT_EQ(parse_device("cpu"), Device::cpu());
  EXPECT_EQ(parse_device("cuda"), Device::cuda(0));
  EXPECT_EQ(parse_device("cuda:3"), Device::cuda(3));
  EXPECT_EQ(parse_device(Device::cuda(12).str()), Device::cuda(12));  // what Device::str() writes reads back
  for (const std::string bad : {"", "gpu", "CUDA", "cpu:0", "cuda:", "cuda:-1", "cuda:+1", "cuda: 1", "cuda:1x",
                                "cuda:99999999999", " cuda"})
    EXPECT_TRUE(test::throws_error([&] { parse_device(bad); }, "device \"" + bad + "\"", "cpu, cuda, cuda:N")) << bad;
  EXPECT_EQ(device_from_flag("cpu"), Device::cpu());
  EXPECT_TRUE(test::throws_error([] { device_from_flag("gpu"); }, "--device gpu", "expected cpu, cuda or cuda:N"));
  EXPECT_TRUE(test::throws_error([] { device_from_flag("cuda:x", "--to"); }, "--to cuda:x"));
}

TEST(DeviceFlag, AGpuThatIsNotThereIsAnErrorNamingTheFlag) {
  const Device missing = Device::cuda(cuda_device_count());  // one past the last (cuda:0 without a GPU)
  std::string why = "visible (cuda:0";
  if (!cuda_is_available()) {
#ifdef MG_WITH_CUDA
    why = "no CUDA GPU is visible";
#else
    why = "no CUDA support";
#endif
    EXPECT_TRUE(test::throws_error([] { device_from_flag("cuda"); }, "--device cuda", why));
  }
  EXPECT_TRUE(test::throws_error([&] { device_from_flag(missing.str()); }, "--device " + missing.str(), why));
}

TEST(DeviceFlag, Tf32IsForAGpu) {
  TrainOptions o = tiny("mamba", Device::cpu(), fresh_dir("tf32"));
  o.tf32 = true;
  EXPECT_TRUE(test::throws_error([&] { train(o, text()); }, "--tf32", "cpu"));
}

// configs/ holds the configs the README and the benchmarks name; `train --config` reads them.
TEST(Configs, TheRepositorysConfigsLoad) {
  const mamba::MambaConfig a = mamba::MambaConfig::load((kSource / "configs" / "mamba-a.json").string());
  EXPECT_EQ(a.d_model, 384);
  EXPECT_EQ(a.n_layer, 6);
  EXPECT_EQ(a.d_state, 16);
  const mamba::MambaConfig b = mamba::MambaConfig::load((kSource / "configs" / "mamba-b.json").string());
  EXPECT_EQ(b.d_model, 768);
  EXPECT_EQ(b.n_layer, 24);
  EXPECT_EQ(b.padded_vocab_size(), 50280);
}

// ---- on a GPU

// train() that returns the error it threw ("" when it finished).
std::string train_error(const TrainOptions& o) {
  try {
    train(o, text());
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TrainOnGpu, LossesRepeatRunAfterRunAndFollowTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  for (const std::string kind : {"mamba", "gpt"}) {
    SCOPED_TRACE(kind);
    const fs::path dir = fresh_dir("repeat_" + kind);
    TrainResult a = train(tiny(kind, kGpu, dir / "a"), text()), b = train(tiny(kind, kGpu, dir / "b"), text());
    TrainResult cpu = train(tiny(kind, Device::cpu(), dir / "cpu"), text());
    ASSERT_EQ(a.losses.size(), 10u);
    EXPECT_EQ(a.losses, b.losses);
    EXPECT_EQ(a.val_loss, b.val_loss);
    // Rounding differs between the devices, and AdamW's normalized steps carry it on: 0.2%.
    for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_NEAR(a.losses[i], cpu.losses[i], 2e-3 * cpu.losses[i]) << i;
    EXPECT_NEAR(a.val_loss, cpu.val_loss, 2e-3 * cpu.val_loss);
    // The metrics record the GPU's peak memory at every progress line.
    std::ifstream metrics(dir / "a" / "metrics.jsonl");
    std::string line;
    int with_peak = 0;
    while (std::getline(metrics, line))
      if (nlohmann::json::parse(line).value("gpu_peak_bytes", int64_t{0}) > 0) ++with_peak;
    EXPECT_EQ(with_peak, 4);  // steps 3, 6, 9, 10
  }
}

TEST(TrainOnGpu, ResumeContinuesBitIdentically) {
  MG_SKIP_WITHOUT_CUDA();
  for (const std::string kind : {"mamba", "gpt"}) {
    SCOPED_TRACE(kind);
    const fs::path dir = fresh_dir("resume_" + kind);
    TrainOptions o = tiny(kind, kGpu, dir / "one");
    o.gpt.dropout = 0.2;  // the GPT's dropout masks continue from the checkpoint's generator state
    TrainResult unbroken = train(o, text());
    TrainOptions first = o;
    first.out_dir = (dir / "two").string();
    first.time_budget_s = 1e-9;  // stops (with a checkpoint) after its first step
    TrainResult part1 = train(first, text());
    ASSERT_TRUE(part1.stopped_by_time_budget);
    TrainOptions second = o;
    second.out_dir = first.out_dir;
    second.resume = part1.checkpoint_path;
    TrainResult part2 = train(second, text());
    std::vector<double> joined = part1.losses;
    joined.insert(joined.end(), part2.losses.begin(), part2.losses.end());
    EXPECT_EQ(joined, unbroken.losses);
    EXPECT_EQ(part2.val_loss, unbroken.val_loss);
  }
}

// The losses are read at log, evaluation and save steps only; a NaN is still named at the step
// where it first happened, on every device.
TEST(TrainOnEveryDevice, ANonFiniteLossIsNamedAtTheStepWhereItFirstHappened) {
  for (Device device : test::test_devices()) {
    SCOPED_TRACE(device.str());
    const fs::path dir = fresh_dir("nan");
    TrainOptions bad = tiny("mamba", device, dir);
    bad.lr = 1e30, bad.min_lr = 1e29, bad.warmup = 0, bad.clip = 0;  // explodes within a few steps
    bad.eval_every = bad.save_every = bad.log_every = 1000;           // losses read at the last step only
    // The first step whose loss is not finite: the shortest run that fails (runs repeat bit for bit).
    int64_t first_bad = 0;
    std::string message;
    for (int64_t steps = 1; steps <= 12 && message.empty(); ++steps) {
      bad.steps = steps;
      message = train_error(bad);
      first_bad = steps;
    }
    ASSERT_NE(message.find("the loss became"), std::string::npos) << message;
    EXPECT_NE(message.find(str(" at step ", first_bad, ";")), std::string::npos) << message;
    ASSERT_LT(first_bad, 10);
    bad.steps = 12;  // read at step 12: the read must look back to the first bad step
    EXPECT_NE(train_error(bad).find(str(" at step ", first_bad, ";")), std::string::npos);
    // The checkpoint is the last finite run's: the failing runs saved nothing.
    ASSERT_GT(first_bad, 1);
    EXPECT_EQ(load_checkpoint((dir / "checkpoint.safetensors").string()).info.step, first_bad - 1);
  }
}

// Greedy tokens after "the c" from a loaded model on `device`, with the logits each was chosen from.
struct Greedy {
  std::vector<int64_t> tokens;
  std::vector<std::vector<float>> logits;
  bool replayed = false;
};

Greedy greedy(LoadedModel loaded, Device device, int64_t n, const std::string& prompt = "the c") {
  loaded.model->to(device);
  loaded.model->eval();
  Greedy out;
  GenerationOptions options{.max_new_tokens = n, .sampling = {.temperature = 0}, .device = device};
  GenerationStats stats;
  out.tokens = generate_tokens(*loaded.model, loaded.tokenizer->encode(prompt), options,
                               [&](int64_t, const std::vector<float>& logits) { out.logits.push_back(logits); }, &stats);
  out.replayed = stats.replayed;
  return out;
}

// The same tokens with logits that agree to 1e-3 (float rounding, carried through the recurrence;
// a wrong state or token is off by far more), up to a position where the reference's two best
// logits were within that of each other (another device may then pick either one).
void expect_same_greedy(const Greedy& reference, const Greedy& other) {
  ASSERT_EQ(other.tokens.size(), reference.tokens.size());
  for (size_t i = 0; i < reference.tokens.size(); ++i) {
    const std::vector<float>& r = reference.logits[i];
    const int64_t V = static_cast<int64_t>(r.size());
    ASSERT_TRUE(test::all_close(from_vector(other.logits[i], {V}), from_vector(r, {V}), 1e-3, 1e-3)) << "token " << i;
    if (other.tokens[i] == reference.tokens[i]) continue;
    std::vector<float> sorted = r;
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
    ASSERT_LT(sorted[0] - sorted[1], 4e-3) << "token " << i << ": " << other.tokens[i] << " instead of "
                                           << reference.tokens[i] << " with no near tie";
    return;
  }
}

TEST(GenerateOnGpu, FollowsTheCpuMambaFromACudaGraphGptEagerly) {
  MG_SKIP_WITHOUT_CUDA();
  for (const std::string kind : {"mamba", "gpt"}) {
    SCOPED_TRACE(kind);
    const fs::path dir = fresh_dir("generate_" + kind);
    TrainOptions o = tiny(kind, Device::cpu(), dir);
    o.steps = 40;  // trained, so that greedy choices are not near ties
    const TrainResult run = train(o, text());
    // 40 tokens: past the GPT's 16-position window, where its session restarts its KV caches.
    const Greedy cpu = greedy(load_model("", run.checkpoint_path), Device::cpu(), 40);
    const Greedy gpu = greedy(load_model("", run.checkpoint_path), kGpu, 40);
    EXPECT_FALSE(cpu.replayed);
    EXPECT_EQ(gpu.replayed, kind == "mamba");  // a KV cache grows: GPT's step is not replayable
    expect_same_greedy(cpu, gpu);
  }
}

TEST(GenerateOnGpu, APretrainedDirectoryFollowsTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  const std::string dir = (kSource / "tests" / "fixtures" / "hf_mamba" / "tiny").string();
  const Greedy cpu = greedy(load_model(dir, ""), Device::cpu(), 12, "Hello world");
  const Greedy gpu = greedy(load_model(dir, ""), kGpu, 12, "Hello world");
  EXPECT_TRUE(gpu.replayed);
  expect_same_greedy(cpu, gpu);
}

// A checkpoint is the same file whichever device wrote it: trained on the GPU it generates and
// resumes on the CPU, and the other way round.
TEST(TrainOnGpu, CheckpointsMoveBetweenDevices) {
  MG_SKIP_WITHOUT_CUDA();
  const fs::path dir = fresh_dir("move");
  TrainOptions on_gpu = tiny("mamba", kGpu, dir / "gpu"), on_cpu = tiny("mamba", Device::cpu(), dir / "cpu");
  on_gpu.steps = on_cpu.steps = 40;
  const TrainResult gpu_run = train(on_gpu, text()), cpu_run = train(on_cpu, text());
  const LoadedCheckpoint from_gpu = load_checkpoint(gpu_run.checkpoint_path);
  const LoadedCheckpoint from_cpu = load_checkpoint(cpu_run.checkpoint_path);
  EXPECT_EQ(from_gpu.model.keys(), from_cpu.model.keys());
  EXPECT_EQ(from_gpu.optimizer.keys(), from_cpu.optimizer.keys());
  for (const auto& [name, t] : from_gpu.model) EXPECT_TRUE(t.device().is_cpu()) << name;

  for (const TrainResult* run : {&gpu_run, &cpu_run}) {
    SCOPED_TRACE(run == &gpu_run ? "trained on the GPU" : "trained on the CPU");
    expect_same_greedy(greedy(load_model("", run->checkpoint_path), Device::cpu(), 30),
                       greedy(load_model("", run->checkpoint_path), kGpu, 30));
  }
  // Resumed on the other device, each run goes on (not bit for bit: the devices round differently).
  TrainOptions gpu_on_cpu = tiny("mamba", Device::cpu(), dir / "gpu"), cpu_on_gpu = tiny("mamba", kGpu, dir / "cpu");
  gpu_on_cpu.steps = cpu_on_gpu.steps = 44;
  gpu_on_cpu.resume = gpu_run.checkpoint_path, cpu_on_gpu.resume = cpu_run.checkpoint_path;
  gpu_on_cpu.given = cpu_on_gpu.given = {"steps"};  // as --steps 44 on the command line: the schedule grows
  for (const TrainOptions* o : {&gpu_on_cpu, &cpu_on_gpu}) {
    const TrainResult resumed = train(*o, text());
    EXPECT_EQ(resumed.first_step, 40);
    EXPECT_EQ(resumed.last_step, 44);
    EXPECT_LT(resumed.losses.back(), gpu_run.losses.front());
  }
}

}  // namespace
}  // namespace mg::apps
