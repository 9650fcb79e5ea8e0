// The GPT model: Hugging Face GPT2LMHeadModel's weights load under their own names and give
// transformers' logits (tests/fixtures/gpt2_tiny, written by its gen.py); generation through the
// KV cache equals the full forward; GPT-2's init; the parameter count; errors.
#include "models/gpt/model.h"

#include <cmath>
#include <filesystem>

#include "nn/safetensors.h"
#include "test_util.h"

namespace mg {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) {
  fs::path relative = fs::path("tests/fixtures/gpt2_tiny") / name;  // ctest runs from the project root
  if (fs::exists(relative)) return relative;
  return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "gpt2_tiny" / name;
}

gpt::GPTConfig tiny_config() {  // the fixture's GPT2Config
  gpt::GPTConfig c;
  c.vocab_size = 50, c.n_positions = 32, c.n_embd = 16, c.n_layer = 2, c.n_head = 2;
  return c;
}

TEST(GPT, LoadsHuggingFaceWeightsAndMatchesTransformersLogits) {
  Generator gen(0);
  gpt::GPT model(tiny_config(), gen);
  nn::StateDict hf = nn::load_safetensors(fixture("model.safetensors").string()).tensors;
  model.load_state_dict(gpt::from_hf_state_dict(hf), /*strict=*/true);  // every name and shape as HF's
  EXPECT_EQ(model.num_parameters(), 7904);
  EXPECT_EQ(model.num_parameters(), tiny_config().num_parameters());
  nn::StateDict expected = nn::load_safetensors(fixture("expected.safetensors").string()).tensors;
  model.eval();
  Tensor logits = model.forward(expected.at("tokens"));
  EXPECT_TRUE(test::all_close(logits, expected.at("logits_float32"), 2e-5, 2e-5));
  model.to(DType::Float64);
  EXPECT_TRUE(test::all_close(model.forward(expected.at("tokens")), expected.at("logits_float64"), 1e-11, 1e-11));
}

TEST(GPT, StateDictNamesAreHuggingFaceNames) {
  Generator gen(0);
  gpt::GPT model(tiny_config(), gen);
  std::vector<std::string> names = model.state_dict().keys();
  ASSERT_EQ(names.size(), 4u + 2 * 12);
  EXPECT_EQ(names[0], "transformer.wte.weight");
  EXPECT_EQ(names[1], "transformer.wpe.weight");
  EXPECT_EQ(names[2], "transformer.h.0.ln_1.weight");
  EXPECT_EQ(names[4], "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(model.state_dict().at("transformer.h.0.attn.c_attn.weight").shape(), (Shape{16, 48}));  // (in, out)
  EXPECT_EQ(model.state_dict().at("transformer.h.1.mlp.c_proj.weight").shape(), (Shape{64, 16}));
  EXPECT_EQ(names.back(), "transformer.ln_f.bias");
  // An untied head cannot be represented, and says so.
  nn::StateDict hf = model.state_dict();
  hf.set("lm_head.weight", ones({50, 16}));
  EXPECT_TRUE(test::throws_error([&] { gpt::from_hf_state_dict(hf); }, "lm_head.weight", "tied"));
  hf.set("lm_head.weight", model.state_dict().at("transformer.wte.weight").clone());
  hf.set("transformer.h.0.attn.bias", ones({1, 1, 32, 32}));
  EXPECT_EQ(gpt::from_hf_state_dict(hf).size(), names.size());
}

TEST(GPT, Gpt2Initialization) {
  gpt::GPTConfig c;
  c.n_embd = 64, c.n_layer = 8, c.n_head = 4, c.vocab_size = 100;
  Generator gen(3);
  gpt::GPT model(c, gen);
  auto stddev = [](const Tensor& t) {
    std::vector<float> v = t.to_vector<float>();
    double s = 0;
    for (float x : v) s += double(x) * x;
    return std::sqrt(s / v.size());
  };
  auto params = model.state_dict();
  EXPECT_NEAR(stddev(params.at("transformer.wte.weight")), 0.02, 0.001);
  EXPECT_NEAR(stddev(params.at("transformer.h.3.attn.c_attn.weight")), 0.02, 0.001);
  EXPECT_NEAR(stddev(params.at("transformer.h.3.mlp.c_proj.weight")), 0.02 / 4.0, 0.0003);  // 0.02 / sqrt(2 * 8)
  EXPECT_NEAR(stddev(params.at("transformer.h.3.attn.c_proj.weight")), 0.02 / 4.0, 0.0005);
  EXPECT_EQ(params.at("transformer.h.3.attn.c_attn.bias").to_vector<float>(), std::vector<float>(192, 0.0f));
  EXPECT_EQ(params.at("transformer.h.3.ln_2.weight").to_vector<float>(), std::vector<float>(64, 1.0f));
  // The same seed, the same model.
  Generator again(3);
  gpt::GPT twin(c, again);
  EXPECT_EQ(twin.state_dict().at("transformer.h.7.mlp.c_fc.weight").to_vector<float>(),
            params.at("transformer.h.7.mlp.c_fc.weight").to_vector<float>());
}

TEST(GPT, GenerationWithKVCacheMatchesFullForward) {
  Generator gen(0);
  gpt::GPT model(tiny_config(), gen);
  model.load_state_dict(gpt::from_hf_state_dict(nn::load_safetensors(fixture("model.safetensors").string()).tensors));
  model.eval();
  model.to(DType::Float64);
  Tensor tokens = randint(0, 50, {2, 20}, gen);
  Tensor full = model.forward(tokens);  // (2, 20, 50)
  std::unique_ptr<GenerationSession> session = model.start_generation(2);
  int64_t position = 0;
  for (int64_t piece : {7, 1, 1, 5, 6}) {
    Tensor logits = session->feed(contiguous(narrow(tokens, 1, position, piece)));
    position += piece;
    EXPECT_EQ(session->position(), position);
    EXPECT_TRUE(test::all_close(logits, narrow(full, 1, position - 1, 1).squeeze(1), 1e-12, 1e-12)) << position;
    // The cache holds 2 (k, v) x layers x B x position x C elements.
    EXPECT_EQ(session->state_bytes(), 2 * 2 * 2 * position * 16 * 8);
  }
  // Past the 32-position window generation goes on, from the last half window.
  for (int i = 0; i < 30; ++i) {
    Tensor logits = session->feed(zeros({2, 1}, {.dtype = DType::Int64}));
    EXPECT_EQ(logits.shape(), (Shape{2, 50}));
  }
  EXPECT_EQ(session->position(), 50);
  EXPECT_LE(session->state_bytes(), 2 * 2 * 2 * 32 * 16 * 8);
}

// On a GPU the KV caches live there, and the restart past the window builds its input there too.
TEST(GPT, GenerationOnTheGpuMatchesTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  Generator gen(3);
  gpt::GPT cpu_model(tiny_config(), gen), gpu_model(tiny_config(), gen);
  gpu_model.load_state_dict(cpu_model.state_dict());
  gpu_model.to(Device::cuda(0));
  cpu_model.eval();
  gpu_model.eval();
  std::unique_ptr<GenerationSession> on_cpu = cpu_model.start_generation(1), on_gpu = gpu_model.start_generation(1);
  Tensor prompt = randint(0, 50, {1, 5}, gen);
  Tensor expected = on_cpu->feed(prompt), got = on_gpu->feed(prompt.to(Device::cuda(0)));
  for (int64_t i = 0; i < 40; ++i) {  // past the 32-position window
    ASSERT_TRUE(test::all_close(got.to(Device::cpu()), expected, 1e-4, 1e-4)) << "position " << on_cpu->position();
    Tensor next = argmax(expected, -1).reshape({1, 1});
    expected = on_cpu->feed(next);
    got = on_gpu->feed(next.to(Device::cuda(0)));
  }
  EXPECT_EQ(on_gpu->state_bytes(), on_cpu->state_bytes());
}

TEST(GPT, LossIsCrossEntropyOfLogitsAndGradientsReachEveryParameter) {
  Generator gen(1);
  gpt::GPT model(tiny_config(), gen);
  Tensor inputs = randint(0, 50, {3, 9}, gen), targets = randint(0, 50, {3, 9}, gen);
  Tensor loss = model.loss(inputs, targets);
  Tensor logits = model.forward(inputs);
  EXPECT_NEAR(loss.item<double>(), cross_entropy(logits.reshape({-1, 50}), targets.reshape({-1})).item<double>(), 1e-6);
  EXPECT_NEAR(loss.item<double>(), std::log(50.0), 0.05);  // GPT-2's small init: near-uniform predictions
  loss.backward();
  for (const auto& [name, p] : model.named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
}

TEST(GPT, DropoutOnlyWhileTraining) {
  gpt::GPTConfig c = tiny_config();
  c.dropout = 0.5;
  Generator gen(0);
  gpt::GPT model(c, gen);
  Tensor tokens = randint(0, 50, {2, 9}, gen);
  NoGradGuard no_grad;
  Tensor a = model.forward(tokens), b = model.forward(tokens);  // training: two different masks
  EXPECT_FALSE(test::all_close(a, b, 1e-6, 1e-6));
  model.eval();
  EXPECT_TRUE(test::all_close(model.forward(tokens), model.forward(tokens), 0, 0));
  c.dropout = 0;
  gpt::GPT plain(c, gen);
  plain.load_state_dict(model.state_dict());
  plain.eval();
  EXPECT_TRUE(test::all_close(model.forward(tokens), plain.forward(tokens), 0, 0));
}

TEST(GPT, Errors) {
  gpt::GPTConfig c = tiny_config();
  c.n_head = 3;
  Generator gen(0);
  EXPECT_TRUE(test::throws_error([&] { gpt::GPT bad(c, gen); }, "GPTConfig: n_embd (16) must be a multiple of n_head (3)"));
  EXPECT_TRUE(test::throws_error([&] { gpt::GPTConfig::from_json(R"({"n_embd": 16, "n_heads": 2})"); },
                                 "GPTConfig: unknown field \"n_heads\""));
  EXPECT_TRUE(test::throws_error([&] { gpt::GPTConfig::from_json(R"({"n_embd": "wide"})"); }, "GPTConfig", "n_embd"));
  // Numbers an int64 cannot hold are errors, not casts (1e300 to int64 is undefined behaviour).
  for (const char* bad : {R"({"n_embd": 1e300})", R"({"n_layer": 2.5})", R"({"vocab_size": 18446744073709551615})"})
    EXPECT_TRUE(test::throws_error([&] { gpt::GPTConfig::from_json(bad); }, "must be an integer")) << bad;
  gpt::GPTConfig huge = tiny_config();
  huge.n_embd = huge.n_head = int64_t{1} << 40;  // valid, but more parameters than int64 counts
  EXPECT_EQ(huge.num_parameters(), INT64_MAX);
  EXPECT_EQ(gpt::GPTConfig::from_json(tiny_config().to_json()).to_json(), tiny_config().to_json());
  gpt::GPT model(tiny_config(), gen);
  EXPECT_TRUE(test::throws_error([&] { model.forward(zeros({1, 33}, {.dtype = DType::Int64})); }, "GPT: positions 0..32",
                                 "n_positions = 32"));
  EXPECT_TRUE(test::throws_error([&] { model.forward(zeros({1, 3})); }, "GPT: expected int64 tokens"));
}

}  // namespace
}  // namespace mg
