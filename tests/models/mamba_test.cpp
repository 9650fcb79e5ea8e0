#include <cmath>

#include "models/mamba/model.h"
#include "test_util.h"

namespace mg {
namespace {

using mamba::MambaConfig;
using mamba::MambaLM;

MambaConfig tiny_config() {
  MambaConfig c;
  c.d_model = 8;
  c.n_layer = 2;
  c.vocab_size = 11;
  c.d_state = 4;
  c.d_conv = 3;
  return c;
}

Tensor random_tokens(int64_t batch, int64_t length, int64_t vocab, uint64_t seed) {
  Generator gen(seed);
  return randint(0, vocab, {batch, length}, gen);
}

TEST(MambaLM, DefaultConfigHasTheOfficialParameterNamesShapesAndCount) {
  Generator gen(0);
  MambaLM model(MambaConfig{}, gen);
  EXPECT_EQ(model.num_parameters(), 474880);  // tied embeddings: the head adds nothing
  std::map<std::string, Shape> shapes;
  for (const auto& [name, t] : model.named_parameters()) shapes[name] = t.shape();
  EXPECT_EQ(shapes.at("backbone.embeddings.weight"), Shape({65, 128}));
  EXPECT_EQ(shapes.at("backbone.layers.0.norm.weight"), Shape({128}));
  EXPECT_EQ(shapes.at("backbone.layers.3.mixer.in_proj.weight"), Shape({512, 128}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.conv1d.weight"), Shape({256, 1, 4}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.conv1d.bias"), Shape({256}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.x_proj.weight"), Shape({8 + 32, 256}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.dt_proj.weight"), Shape({256, 8}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.dt_proj.bias"), Shape({256}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.A_log"), Shape({256, 16}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.D"), Shape({256}));
  EXPECT_EQ(shapes.at("backbone.layers.0.mixer.out_proj.weight"), Shape({128, 256}));
  EXPECT_EQ(shapes.at("backbone.norm_f.weight"), Shape({128}));
  EXPECT_EQ(shapes.size(), 2 + 4 * 10u);
}

// The count from the shapes alone equals the built model's, with every option that changes a shape.
TEST(MambaConfig, ParameterCountWithoutBuildingTheModel) {
  std::vector<MambaConfig> configs(5);
  configs[1].bias = true;
  configs[2].conv_bias = false, configs[2].dt_rank = 5, configs[2].d_conv = 3;
  configs[3].pad_vocab_size_multiple = 8, configs[3].vocab_size = 61, configs[3].expand = 3;
  configs[4].d_model = 24, configs[4].n_layer = 1, configs[4].d_state = 7;
  for (const MambaConfig& config : configs) {
    Generator gen(0);
    EXPECT_EQ(config.num_parameters(), MambaLM(config, gen).num_parameters()) << config.to_json();
  }
  MambaConfig huge;
  huge.d_model = int64_t{1} << 40;
  EXPECT_EQ(huge.num_parameters(), INT64_MAX);  // no overflow into a small number
}

TEST(MambaLM, OfficialInitialisation) {
  Generator gen(1);
  MambaConfig config;
  MambaLM model(config, gen);
  auto& mixer = *model.backbone->layers->at<mamba::ResidualBlock>(0)->mixer;
  std::vector<double> a_log = mixer.A_log.to_vector<double>();
  for (int64_t n = 0; n < 16; ++n) EXPECT_NEAR(a_log[5 * 16 + n], std::log(n + 1.0), 1e-6);
  for (double d : mixer.D.to_vector<double>()) EXPECT_EQ(d, 1.0);
  // softplus(dt_proj.bias) lies in [dt_min, dt_max] (the floor 1e-4 is below dt_min).
  for (double b : mixer.dt_proj->bias.to_vector<double>()) {
    double dt = std::log1p(std::exp(b));
    EXPECT_GE(dt, config.dt_min * 0.999);
    EXPECT_LE(dt, config.dt_max * 1.001);
  }
  double bound = std::pow(8.0, -0.5);
  for (double w : mixer.dt_proj->weight.to_vector<double>()) EXPECT_LE(std::abs(w), bound);
  // out_proj: kaiming-uniform bound 1/sqrt(fan_in), scaled by 1/sqrt(n_layer).
  double out_bound = 1.0 / std::sqrt(256.0) / std::sqrt(4.0);
  double max_abs = 0;
  for (double w : mixer.out_proj->weight.to_vector<double>()) max_abs = std::max(max_abs, std::abs(w));
  EXPECT_LE(max_abs, out_bound);
  EXPECT_GT(max_abs, 0.9 * out_bound);
  // embedding ~ N(0, 0.02)
  std::vector<double> e = model.backbone->embeddings->weight.to_vector<double>();
  double var = 0;
  for (double v : e) var += v * v;
  EXPECT_NEAR(std::sqrt(var / e.size()), 0.02, 0.002);
}

TEST(MambaLM, ForwardShapesAndCausality) {
  Generator gen(2);
  MambaLM model(tiny_config(), gen);
  Tensor tokens = random_tokens(2, 9, 11, 3);
  Tensor logits = model.forward(tokens);
  ASSERT_EQ(logits.shape(), Shape({2, 9, 11}));
  // Changing token 5 must not change logits before position 5.
  std::vector<int64_t> ids = tokens.to_vector<int64_t>();
  ids[5] = (ids[5] + 1) % 11;
  Tensor changed = model.forward(from_vector(ids, {2, 9}));
  EXPECT_TRUE(test::all_close(narrow(changed, 1, 0, 5), narrow(logits, 1, 0, 5), 0, 0));
  EXPECT_FALSE(test::all_close(narrow(changed, 1, 5, 1), narrow(logits, 1, 5, 1), 1e-7, 0));
}

TEST(MambaLM, GradientsMatchFiniteDifferencesInFloat64) {
  Generator gen(4);
  MambaLM model(tiny_config(), gen);
  model.to(DType::Float64);
  Tensor tokens = random_tokens(2, 6, 11, 5), targets = random_tokens(2, 6, 11, 6);
  model.zero_grad();
  model.loss(tokens, targets).backward();
  Generator pick(7);
  for (const auto& [name, p] : model.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << " got no gradient";
    std::vector<double> grad = p.grad().to_vector<double>();
    double* data = p.data<double>();
    for (int k = 0; k < 2; ++k) {  // two random elements of every parameter
      int64_t i = pick.next_int(0, p.numel());
      double saved = data[i], eps = 1e-6;
      NoGradGuard no_grad;
      data[i] = saved + eps;
      double plus = model.loss(tokens, targets).item<double>();
      data[i] = saved - eps;
      double minus = model.loss(tokens, targets).item<double>();
      data[i] = saved;
      double numeric = (plus - minus) / (2 * eps);
      EXPECT_NEAR(grad[i], numeric, 1e-6 + 1e-4 * std::abs(numeric)) << name << "[" << i << "]";
    }
  }
}

TEST(MambaLM, RecurrentStepsEqualTheFullForward) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    // float32: the step and the scan round differently; float64: only the order of sums differs.
    const double tol = dtype == DType::Float32 ? 1e-4 : 1e-10;
    Generator gen(8);
    MambaConfig config = tiny_config();
    config.d_model = 16;
    MambaLM model(config, gen);
    model.to(dtype);
    Tensor tokens = random_tokens(2, 64, 11, 9);
    Tensor full = model.forward(tokens);  // (2, 64, 11)
    ASSERT_EQ(full.dtype(), dtype);
    mamba::InferenceState state = model.new_state(2);
    for (int64_t t = 0; t < 64; ++t) {
      Tensor step = model.step(contiguous(narrow(tokens, 1, t, 1).squeeze(1)), state);  // (2, 11)
      ASSERT_TRUE(test::all_close(step, narrow(full, 1, t, 1).squeeze(1), tol, tol)) << dtype << " position " << t;
    }
  }
}

TEST(MambaLM, PromptStatesHandOverToRecurrentSteps) {
  Generator gen(10);
  MambaLM model(tiny_config(), gen);
  for (int64_t prompt_len : {1, 2, 7}) {  // shorter and longer than the conv width (3)
    Tensor tokens = random_tokens(1, prompt_len + 5, 11, 11 + prompt_len);
    Tensor full = model.forward(tokens);
    mamba::InferenceState state;
    model.forward(contiguous(narrow(tokens, 1, 0, prompt_len)), &state);
    for (int64_t t = prompt_len; t < prompt_len + 5; ++t) {
      Tensor step = model.step(contiguous(narrow(tokens, 1, t, 1).squeeze(1)), state);
      ASSERT_TRUE(test::all_close(step, narrow(full, 1, t, 1).squeeze(1), 1e-4, 1e-4))
          << "prompt " << prompt_len << ", position " << t;
    }
  }
}

TEST(MambaLM, GenerationStateIsTheSameSizeAtEveryPosition) {
  Generator gen(12);
  MambaLM model(tiny_config(), gen);  // 2 layers, d_inner 16, d_conv 3, N 4
  const int64_t expected = 2 * (16 * 3 + 16 * 4) * 4;  // layers x (conv + SSM state) x float32
  EXPECT_EQ(model.new_state(1).state_bytes(), expected);
  EXPECT_EQ(model.new_state(3).state_bytes(), 3 * expected);
  std::unique_ptr<GenerationSession> session = model.start_generation(1);
  EXPECT_EQ(session->state_bytes(), 0);  // nothing fed yet
  session->feed(random_tokens(1, 5, 11, 13));
  EXPECT_EQ(session->state_bytes(), expected);
  for (int i = 0; i < 20; ++i) session->feed(zeros({1, 1}, {.dtype = DType::Int64}));
  EXPECT_EQ(session->position(), 25);
  EXPECT_EQ(session->state_bytes(), expected);
}

TEST(MambaConfig, JsonRoundTripAndErrors) {
  MambaConfig c = tiny_config();
  c.dt_rank = 3;
  MambaConfig back = MambaConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(MambaConfig{}.resolved_dt_rank(), 8);
  EXPECT_TRUE(test::throws_error([] { MambaConfig::from_json("{\"d_modle\": 3}"); }, "unknown field", "d_modle"));
  EXPECT_TRUE(test::throws_error([] { MambaConfig::from_json("{\"d_model\": -1}"); }, "d_model"));
  EXPECT_TRUE(test::throws_error([] { MambaConfig::from_json("{\"d_model\": \"big\"}"); }, "d_model", "wrong type"));
  EXPECT_TRUE(test::throws_error([] { MambaConfig::from_json("{not json"); }, "invalid JSON"));
  // Found by tests/fuzz/fuzz_mamba_config: numbers that do not fit an int64 field (8.4e19 was cast
  // to int64, undefined behaviour) and fractions are errors, not silently converted.
  for (const char* bad : {"{\"expand\": 84146744073709551615}", "{\"d_model\": 18446744073709551615}",
                          "{\"n_layer\": 2.5}", "{\"d_state\": 1e308}"})
    EXPECT_TRUE(test::throws_error([&] { MambaConfig::from_json(bad); }, "must be an integer within int64")) << bad;
}

TEST(MambaLM, BadInputsAreClearErrors) {
  Generator gen(12);
  MambaLM model(tiny_config(), gen);
  EXPECT_TRUE(test::throws_error([&] { model.forward(ones({2, 3})); }, "MambaLM", "int64"));
  EXPECT_TRUE(test::throws_error([&] { model.forward(from_vector(std::vector<int64_t>{0, 11}, {1, 2})); }, "embedding"));
  mamba::InferenceState empty_state;
  EXPECT_TRUE(test::throws_error([&] { model.step(tensor({int64_t{1}}), empty_state); }, "MambaLM.step", "layers"));
}

}  // namespace
}  // namespace mg
