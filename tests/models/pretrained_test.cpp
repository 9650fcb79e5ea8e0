// Pretrained Mamba models in the Hugging Face layout against transformers 4.39's MambaForCausalLM
// (tests/fixtures/hf_mamba/gen.py wrote the directories and transformers' outputs): the logits of
// the parallel forward and of the recurrent step, and greedy generation token for token, for
// float32, sharded, float16 and bfloat16 weights, every config option, and the original
// state-spaces layout.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "models/mamba/pretrained.h"
#include "nn/safetensors.h"
#include "ops/view.h"
#include "test_util.h"

namespace mg::mamba {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "hf_mamba" / name; }

struct Expected {
  Tensor input_ids;  // (1, L)
  int64_t prompt_length;
  Tensor logits;     // (1, L, V)
  Tensor logits_fp32_original;  // f16/bf16 only
};
Expected expected_for(const std::string& dir) {
  const nn::StateDict t = nn::load_safetensors(fixture(dir).string() + "/expected.safetensors").tensors;
  Expected e{t.at("input_ids"), t.at("prompt_length").data<int64_t>()[0], t.at("logits"), {}};
  if (const Tensor* original = t.find("logits_fp32_original")) e.logits_fp32_original = *original;
  return e;
}

// |ours - theirs| <= rtol * max|theirs| everywhere: relative to the logits' scale (an elementwise
// relative test would fail on logits that happen to be near zero).
::testing::AssertionResult close_relative(const Tensor& ours, const Tensor& theirs, double rtol) {
  if (ours.shape() != theirs.shape())
    return ::testing::AssertionFailure() << "shapes " << ours.shape() << " and " << theirs.shape();
  const std::vector<float> a = ours.contiguous().reshape({-1}).to_vector<float>();
  const std::vector<float> b = theirs.contiguous().reshape({-1}).to_vector<float>();
  double scale = 0, worst = 0;
  for (float v : b) scale = std::max(scale, std::abs(static_cast<double>(v)));
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  if (worst <= rtol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max |difference| " << worst << " > " << rtol << " x max|logit| " << scale;
}

constexpr double kFloat32Tolerance = 1e-4;

// The parallel forward over the whole sequence, the recurrent step after the prompt, and greedy
// decoding, each against transformers.
void expect_matches_transformers(const std::string& dir, const std::string& expected_dir) {
  SCOPED_TRACE(dir);
  PretrainedModel loaded = load_pretrained(fixture(dir).string());
  MambaLM& model = *loaded.model;
  const Expected e = expected_for(expected_dir);
  const int64_t L = e.input_ids.size(1);
  ASSERT_GT(L, e.prompt_length);

  EXPECT_TRUE(close_relative(model.forward(e.input_ids), e.logits, kFloat32Tolerance)) << "parallel forward";

  Tensor prompt = narrow(e.input_ids, 1, 0, e.prompt_length);
  EXPECT_TRUE(close_relative(model.forward(prompt), narrow(e.logits, 1, 0, e.prompt_length), kFloat32Tolerance))
      << "prompt";
  // Generation as `mambagrad generate` runs it: the model's session, the prompt in parallel, then
  // the recurrent step.
  std::unique_ptr<GenerationSession> session = model.start_generation(1);
  const std::vector<int64_t> ids = e.input_ids.reshape({-1}).to_vector<int64_t>();
  Tensor last = session->feed(prompt);  // (1, V)
  for (int64_t pos = e.prompt_length; pos < L; ++pos) {
    // Greedy: the argmax of the last logits is the token transformers' generate() chose.
    EXPECT_EQ(argmax(last, -1).item<int64_t>(), ids[pos]) << "generated token at position " << pos;
    last = session->feed(tensor({ids[pos]}).reshape({1, 1}));  // (1, V)
    EXPECT_TRUE(close_relative(last, narrow(e.logits, 1, pos, 1).reshape({1, -1}), kFloat32Tolerance))
        << "recurrent step at position " << pos;
  }
}

TEST(Pretrained, Float32MatchesTransformers) { expect_matches_transformers("tiny", "tiny"); }
TEST(Pretrained, ShardedMatchesTransformers) { expect_matches_transformers("tiny_sharded", "tiny"); }
TEST(Pretrained, EveryConfigOptionMatchesTransformers) { expect_matches_transformers("tiny_options", "tiny_options"); }
TEST(Pretrained, OriginalStateSpacesLayoutMatchesTransformers) {
  expect_matches_transformers("tiny_original_keys", "tiny");
}

// F16/BF16 weights widen to float32 exactly, so against transformers running those same widened
// weights the float32 tolerance holds. Against the float32 model they were rounded from, the
// weights differ by up to 2^-11 (F16) and 2^-8 (BF16) relative, and the logits of this fixture
// by 1.5e-3 and 8.8e-3 of their scale (gen.py prints both; the rounding errors of ~10^4 weights
// add up through two layers): the bounds below, 5e-3 and 3e-2, leave ~3x of margin. That is the
// accuracy to expect from a model published in F16 or BF16, whatever program runs it.
TEST(Pretrained, Float16MatchesTransformersOnItsWeights) { expect_matches_transformers("tiny_f16", "tiny_f16"); }
TEST(Pretrained, BFloat16MatchesTransformersOnItsWeights) { expect_matches_transformers("tiny_bf16", "tiny_bf16"); }
TEST(Pretrained, HalfPrecisionStaysCloseToTheFloat32Model) {
  for (const auto& [dir, tolerance] : {std::pair{"tiny_f16", 5e-3}, std::pair{"tiny_bf16", 3e-2}}) {
    const Expected e = expected_for(dir);
    EXPECT_TRUE(close_relative(load_pretrained(fixture(dir).string()).model->forward(e.input_ids),
                               e.logits_fp32_original, tolerance))
        << dir;
  }
}

TEST(Pretrained, ConfigKeysMapToOurs) {
  const PretrainedConfig c = load_pretrained(fixture("tiny_options").string()).info;
  EXPECT_EQ(c.config.d_model, 12);
  EXPECT_EQ(c.config.d_state, 4);
  EXPECT_EQ(c.config.d_conv, 3);
  EXPECT_EQ(c.config.expand, 3);
  EXPECT_EQ(c.config.resolved_dt_rank(), 2);
  EXPECT_TRUE(c.config.bias);
  EXPECT_DOUBLE_EQ(c.config.norm_eps, 1e-6);
  EXPECT_EQ(c.eos_token_id, 0);
  EXPECT_TRUE(c.unknown_keys.empty());
  const PretrainedConfig original = load_pretrained(fixture("tiny_original_keys").string()).info;
  EXPECT_EQ(original.config.vocab_size, 317);
  EXPECT_EQ(original.config.padded_vocab_size(), 320);
}

TEST(Pretrained, ConfigRefusesWhatTheModelDoesNotHave) {
  auto refused = [](const std::string& json, const std::string& expected) {
    return test::throws_error([&] { parse_pretrained_config(json, "c.json"); }, "c.json", expected);
  };
  EXPECT_TRUE(refused(R"({"model_type": "mamba2", "hidden_size": 8})", "model_type \"mamba2\""));
  EXPECT_TRUE(refused(R"({"model_type": "falcon_mamba", "hidden_size": 8})", "model_type \"falcon_mamba\""));
  EXPECT_TRUE(refused(R"({"hidden_size": 8, "hidden_act": "gelu"})", "hidden_act \"gelu\""));
  EXPECT_TRUE(refused(R"({"hidden_size": 8, "tie_word_embeddings": false})", "untied"));
  EXPECT_TRUE(refused(R"({"hidden_size": 8, "expand": 2, "intermediate_size": 20})", "intermediate_size"));
  EXPECT_TRUE(refused(R"({"hidden_size": "eight"})", "\"hidden_size\" has the wrong type"));
  EXPECT_TRUE(refused(R"({"d_model": 8, "rms_norm": false})", "LayerNorm"));
  EXPECT_TRUE(refused(R"({"d_model": 8, "ssm_cfg": {"layer": "Mamba2"}})", "Mamba2"));
  EXPECT_TRUE(refused(R"({"d_model": 8, "attn_layer_idx": [3]})", "attention"));
  EXPECT_TRUE(refused(R"({"vocab": 3})", "neither"));
  EXPECT_TRUE(refused("{oops", "not valid JSON"));
  // Numbers an int64 cannot hold are errors, not casts (1e300 to int64 is undefined behaviour).
  EXPECT_TRUE(refused(R"({"hidden_size": 1e300})", "\"hidden_size\" must be an integer"));
  EXPECT_TRUE(refused(R"({"hidden_size": 8, "state_size": 2.5})", "\"state_size\" must be an integer"));
  EXPECT_TRUE(refused(R"({"hidden_size": 8, "eos_token_id": 18446744073709551615})", "\"eos_token_id\" must be an integer"));
  const PretrainedConfig c = parse_pretrained_config(R"({"hidden_size": 8, "time_step_rank": "auto", "new_knob": 1})", "c");
  EXPECT_EQ(c.config.resolved_dt_rank(), 1);
  EXPECT_EQ(c.unknown_keys, std::vector<std::string>{"new_knob"});
}

fs::path scratch(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("mg_pretrained_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(Pretrained, RefusesPickleWithHowToConvert) {
  const fs::path dir = scratch("pickle");
  fs::copy_file(fixture("tiny") / "config.json", dir / "config.json");
  std::ofstream(dir / "pytorch_model.bin") << "not read";
  EXPECT_TRUE(test::throws_error([&] { load_pretrained(dir.string()); }, "pickle", "runs whatever code"));
  EXPECT_TRUE(test::throws_error([&] { load_pretrained(dir.string()); }, "save_file", "model.safetensors"));
}

TEST(Pretrained, MissingOrMismatchedWeightsAreNamed) {
  const fs::path dir = scratch("mismatch");
  EXPECT_TRUE(test::throws_error([&] { load_pretrained(dir.string()); }, "has no config.json"));
  fs::copy_file(fixture("tiny_options") / "config.json", dir / "config.json");
  EXPECT_TRUE(test::throws_error([&] { load_pretrained(dir.string()); }, "has no model.safetensors"));
  fs::copy_file(fixture("tiny") / "model.safetensors", dir / "model.safetensors");  // another model's weights
  EXPECT_TRUE(test::throws_error([&] { load_pretrained(dir.string()); }, "do not fit its config.json", "shape mismatch"));
  // An index that places a tensor in a shard that lacks it.
  const fs::path sharded = scratch("sharded");
  for (const auto& entry : fs::directory_iterator(fixture("tiny_sharded"))) fs::copy_file(entry.path(), sharded / entry.path().filename());
  std::ifstream in(sharded / "model.safetensors.index.json");
  std::string index((std::istreambuf_iterator<char>(in)), {});
  const size_t at = index.find("model-00003-of-00003");
  index.replace(at, 20, "model-00001-of-00003");
  std::ofstream(sharded / "model.safetensors.index.json") << index;
  EXPECT_TRUE(test::throws_error([&] { load_pretrained(sharded.string()); }, "model-00001-of-00003.safetensors lacks"));
}

TEST(Pretrained, SaveThenLoadGivesTheSameModel) {
  const fs::path dir = scratch("export") / "out";
  PretrainedModel tiny = load_pretrained(fixture("tiny_options").string());
  save_pretrained(*tiny.model, dir.string(), 0, 0, 0);
  PretrainedModel again = load_pretrained(dir.string());
  const Expected e = expected_for("tiny_options");
  EXPECT_TRUE(close_relative(again.model->forward(e.input_ids), e.logits, kFloat32Tolerance));
  EXPECT_EQ(again.info.eos_token_id, 0);
  EXPECT_TRUE(test::throws_error([&] { save_pretrained(*tiny.model, dir.string()); }, "already holds a model"));
}

}  // namespace
}  // namespace mg::mamba
