#include <filesystem>
#include <fstream>

#include "apps/common/char_tokenizer.h"
#include "apps/common/checkpoint.h"
#include "apps/common/sampling.h"
#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "models/gpt/model.h"
#include "models/mamba/model.h"
#include "nn/safetensors.h"
#include "test_util.h"

namespace mg::apps {
namespace {

namespace fs = std::filesystem;

// A small text with structure to learn, and a tiny model that trains in a second.
std::string tiny_text() {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "the cat sat on the mat. ";
  return text;
}

TrainOptions tiny_options(const std::string& out) {
  TrainOptions o;
  o.model.d_model = 16;
  o.model.n_layer = 2;
  o.model.d_state = 4;
  o.steps = 12;
  o.batch = 4;
  o.seq_len = 16;
  o.warmup = 3;
  o.eval_every = 5;
  o.eval_batches = 2;
  o.save_every = 6;
  o.log_every = 2;
  o.lr = 1e-2;
  o.min_lr = 1e-3;
  o.out_dir = out;
  o.progress = false;
  return o;
}

TrainOptions tiny_gpt_options(const std::string& out) {
  TrainOptions o = tiny_options(out);
  o.model_kind = "gpt";
  o.gpt.n_embd = 16;
  o.gpt.n_layer = 2;
  o.gpt.n_head = 2;
  o.gpt.n_positions = 16;
  return o;
}

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("mambagrad_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(CharTokenizer, RoundTripAndUnknownCharacters) {
  CharTokenizer t = CharTokenizer::from_text("hello world\n");
  EXPECT_EQ(t.vocabulary(), "\n dehlorw");
  EXPECT_EQ(t.decode(t.encode("low\nrow")), "low\nrow");
  EXPECT_TRUE(test::throws_error([&] { t.encode("help"); }, "'p'", "position 3"));
  EXPECT_TRUE(test::throws_error([] { CharTokenizer::from_text(""); }, "empty"));
  EXPECT_TRUE(test::throws_error([] { CharTokenizer::from_vocabulary("abca"); }, "twice"));
}

TEST(TextDataset, SplitAndBatches) {
  std::vector<int64_t> ids(100);
  for (int i = 0; i < 100; ++i) ids[i] = i;
  TextSplits s = split_90_10(ids);
  EXPECT_EQ(s.train.size(), 90u);
  EXPECT_EQ(s.val.front(), 90);
  Generator gen(1);
  Batch b = random_batch(s.train, 3, 5, gen);
  std::vector<int64_t> in = b.inputs.to_vector<int64_t>(), target = b.targets.to_vector<int64_t>();
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(target[i], in[i] + 1);  // targets are inputs shifted by one
  EXPECT_TRUE(test::throws_error([&] { random_batch(s.val, 2, 10, gen); }, "too short"));
  EXPECT_TRUE(test::throws_error([] { find_tinyshakespeare("/nonexistent/file.txt"); }, "not found"));
}

TEST(Sampling, GreedyTopKTopPAndErrors) {
  std::vector<float> logits{0.1f, 2.0f, -1.0f, 1.9f};
  Generator gen(3);
  EXPECT_EQ(sample_token(logits, {.temperature = 0}, gen), 1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, {.temperature = 1.0, .top_k = 1}, gen), 1);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, {.temperature = 1.0, .top_p = 0.01}, gen), 1);
  std::vector<int> counts(4);
  for (int i = 0; i < 4000; ++i) ++counts[sample_token(logits, {.temperature = 1.0, .top_k = 2}, gen)];
  EXPECT_EQ(counts[0] + counts[2], 0);                 // outside the top 2
  EXPECT_NEAR(counts[1] / 4000.0, 0.525, 0.03);        // e^2 / (e^2 + e^1.9)
  EXPECT_TRUE(test::throws_error([] { validate({.temperature = -1}); }, "temperature"));
  EXPECT_TRUE(test::throws_error([] { validate({.top_p = 0}); }, "top_p"));
}

TEST(Trainer, LossFallsAndFilesAreWritten) {
  fs::path dir = fresh_dir("falls");
  TrainOptions o = tiny_options(dir.string());
  o.steps = 40;
  TrainResult r = train(o, tiny_text());
  ASSERT_EQ(r.losses.size(), 40u);
  EXPECT_LT(r.losses.back(), 0.6 * r.losses.front());
  EXPECT_TRUE(fs::exists(dir / "checkpoint.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "metrics.jsonl"));
  std::ifstream svg(dir / "loss.svg");
  std::string first_line;
  std::getline(svg, first_line);
  EXPECT_NE(first_line.find("<svg"), std::string::npos);
  fs::remove_all(dir);
}

// A run stopped after its first step and resumed gives the same losses, bit for bit, as one run
// with `options` (out_dir is replaced).
void expect_resume_repeats_unbroken_run(const TrainOptions& options, const std::string& name) {
  fs::path one = fresh_dir(name + "_one"), two = fresh_dir(name + "_two");
  TrainOptions unbroken_options = options;
  unbroken_options.out_dir = one.string();
  TrainResult unbroken = train(unbroken_options, tiny_text());

  TrainOptions first = options;
  first.out_dir = two.string();
  first.time_budget_s = 1e-9;  // stops (with a checkpoint) after its first step
  TrainResult part1 = train(first, tiny_text());
  ASSERT_TRUE(part1.stopped_by_time_budget);
  TrainOptions second = options;
  second.out_dir = two.string();
  second.resume = (two / "checkpoint.safetensors").string();
  TrainResult part2 = train(second, tiny_text());
  std::vector<double> joined = part1.losses;
  joined.insert(joined.end(), part2.losses.begin(), part2.losses.end());
  ASSERT_EQ(joined.size(), unbroken.losses.size());
  for (size_t i = 0; i < joined.size(); ++i) EXPECT_EQ(joined[i], unbroken.losses[i]) << "step " << i + 1;
  EXPECT_EQ(part2.val_loss, unbroken.val_loss);
  fs::remove_all(one);
  fs::remove_all(two);
}

TEST(Trainer, ResumeContinuesBitIdentically) { expect_resume_repeats_unbroken_run(tiny_options(""), "resume"); }

// On resume the run's own options come back (here steps 6); one given again (steps) wins, and the
// text must be the one trained on.
TEST(Trainer, ResumeRestoresTheRunUnlessAnOptionIsGivenAgain) {
  fs::path dir = fresh_dir("given");
  TrainOptions o = tiny_options(dir.string());
  o.steps = 6;
  train(o, tiny_text());
  TrainOptions again = tiny_options(dir.string());  // steps 12 here, but not "given": the checkpoint's 6 wins
  again.resume = (dir / "checkpoint.safetensors").string();
  EXPECT_TRUE(test::throws_error([&] { train(again, tiny_text()); }, "already at step 6 of 6", "--steps"));
  again.steps = 9;
  again.given = {"steps"};
  TrainResult extended = train(again, tiny_text());
  EXPECT_EQ(extended.first_step, 6);
  EXPECT_EQ(extended.last_step, 9);
  again.steps = 8;  // fewer than the 9 now done
  EXPECT_TRUE(test::throws_error([&] { train(again, tiny_text()); }, "already at step 9"));
  again.steps = 12;
  std::string other = tiny_text();
  other[10] = 'h';  // a character of the vocabulary, so only the checksum tells
  EXPECT_TRUE(test::throws_error([&] { train(again, other); }, "not the one the checkpoint was trained on"));
  again.given.insert("data");  // given on purpose: the run goes on with the new text
  EXPECT_EQ(train(again, other).last_step, 12);
  fs::remove_all(dir);
}

// A checkpoint's options with numbers its integers cannot hold are errors, not casts (1e300 to
// int64 is undefined behaviour; the same class of input fuzz_mamba_config found in the config).
TEST(TrainOptions, RestoredIntegersMustFit) {
  for (const char* bad : {"{\"steps\": 1e300}", "{\"batch\": 2.5}", "{\"seed\": -1}",
                          "{\"eval_every\": 18446744073709551615}"}) {
    TrainOptions o;
    EXPECT_TRUE(test::throws_error([&] { o.restore_from_json(bad); }, "must be an integer in range")) << bad;
  }
  TrainOptions o;
  o.restore_from_json("{\"steps\": 7, \"seed\": 18446744073709551615}");
  EXPECT_EQ(o.steps, 7);
  EXPECT_EQ(o.seed, ~uint64_t{0});
}

TEST(Trainer, DivergenceStopsNamingTheStepAndKeepsTheCheckpoint) {
  fs::path dir = fresh_dir("nan");
  TrainOptions o = tiny_options(dir.string());
  o.steps = 6;
  train(o, tiny_text());
  auto before = fs::last_write_time(dir / "checkpoint.safetensors");
  auto size_before = fs::file_size(dir / "checkpoint.safetensors");
  TrainOptions bad = tiny_options(dir.string());
  bad.steps = 50;
  bad.lr = 1e30;  // explodes the weights: the loss becomes inf or nan within a few steps
  bad.min_lr = 1e29;
  bad.warmup = 0;
  bad.clip = 0;
  bad.save_every = 1000;
  EXPECT_TRUE(test::throws_error([&] { train(bad, tiny_text()); }, "the loss became", "at step"));
  EXPECT_EQ(fs::last_write_time(dir / "checkpoint.safetensors"), before);
  EXPECT_EQ(fs::file_size(dir / "checkpoint.safetensors"), size_before);
  fs::remove_all(dir);
}

TEST(Trainer, GptLearnsResumesBitIdenticallyAndItsKindIsInTheCheckpoint) {
  fs::path one = fresh_dir("gpt_one"), two = fresh_dir("gpt_two");
  TrainOptions o = tiny_gpt_options(one.string());
  o.steps = 40;
  TrainResult unbroken = train(o, tiny_text());
  EXPECT_LT(unbroken.losses.back(), 0.6 * unbroken.losses.front());
  LoadedCheckpoint c = load_checkpoint((one / "checkpoint.safetensors").string());
  EXPECT_EQ(c.info.model_kind, "gpt");
  EXPECT_EQ(gpt::GPTConfig::from_json(c.info.config).n_embd, 16);
  auto model = model_from_checkpoint(c);
  EXPECT_EQ(model->kind(), "gpt");
  ASSERT_NE(dynamic_cast<gpt::GPT*>(model.get()), nullptr);
  EXPECT_TRUE(c.model.contains("transformer.h.1.attn.c_attn.weight"));

  TrainOptions first = tiny_gpt_options(two.string());
  first.steps = 40;
  first.time_budget_s = 1e-9;  // stops (with a checkpoint) after its first step
  train(first, tiny_text());
  TrainOptions second = tiny_options(two.string());  // says mamba: the checkpoint's kind wins
  second.steps = 40;
  second.resume = (two / "checkpoint.safetensors").string();
  TrainResult part2 = train(second, tiny_text());
  ASSERT_EQ(part2.losses.size(), 39u);
  for (size_t i = 0; i < part2.losses.size(); ++i) EXPECT_EQ(part2.losses[i], unbroken.losses[i + 1]) << "step " << i + 2;
  EXPECT_EQ(load_checkpoint((two / "checkpoint.safetensors").string()).info.model_kind, "gpt");

  TrainOptions too_long = tiny_gpt_options(one.string());
  too_long.seq_len = 17;
  EXPECT_TRUE(test::throws_error([&] { train(too_long, tiny_text()); }, "--seq-len 17", "n_positions = 16"));
  TrainOptions unknown = tiny_options(one.string());
  unknown.model_kind = "rnn";
  EXPECT_TRUE(test::throws_error([&] { train(unknown, tiny_text()); }, "unknown --model \"rnn\""));
  fs::remove_all(one);
  fs::remove_all(two);
}

TEST(Trainer, GptWithDropoutResumesBitIdentically) {
  // The dropout masks come from the model's own generator, whose state the checkpoint keeps.
  TrainOptions o = tiny_gpt_options("");
  o.gpt.dropout = 0.2;
  expect_resume_repeats_unbroken_run(o, "dropout");
}

TEST(Checkpoint, RoundTripAndBadFiles) {
  fs::path dir = fresh_dir("ckpt");
  TrainOptions o = tiny_options(dir.string());
  o.steps = 3;
  train(o, tiny_text());
  LoadedCheckpoint c = load_checkpoint((dir / "checkpoint.safetensors").string());
  EXPECT_EQ(c.info.step, 3);
  EXPECT_EQ(c.info.vocabulary, CharTokenizer::from_text(tiny_text()).vocabulary());
  EXPECT_EQ(c.info.model_kind, "mamba");
  EXPECT_EQ(mamba::MambaConfig::from_json(c.info.config).d_model, 16);
  EXPECT_FALSE(c.optimizer.empty());
  auto model = model_from_checkpoint(c);
  for (const auto& [name, t] : model->state_dict()) EXPECT_TRUE(test::all_close(t, c.model.at(name), 0, 0)) << name;

  nn::save_safetensors((dir / "plain.safetensors").string(), {});
  EXPECT_TRUE(test::throws_error([&] { load_checkpoint((dir / "plain.safetensors").string()); }, "not a mambagrad checkpoint"));
  // A damaged config must not make the loader allocate what the file does not hold (a config of
  // d_model 40000 asked for 25 GB; tests/fuzz/fuzz_checkpoint's target).
  LoadedCheckpoint damaged = c;
  mamba::MambaConfig config = mamba::MambaConfig::from_json(c.info.config);
  config.d_model = 40000;
  damaged.info.config = config.to_json();
  EXPECT_TRUE(test::throws_error([&] { model_from_checkpoint(damaged); }, "describes a model of", "the file holds"));
  config.d_model = int64_t{1} << 40;
  damaged.info.config = config.to_json();
  EXPECT_TRUE(test::throws_error([&] { model_from_checkpoint(damaged); }, "more than 2^63"));
  gpt::GPTConfig gpt_config;  // the same for the other kind
  gpt_config.vocab_size = 65, gpt_config.n_embd = 4096, gpt_config.n_head = 4;
  damaged.info.model_kind = "gpt", damaged.info.config = gpt_config.to_json();
  EXPECT_TRUE(test::throws_error([&] { model_from_checkpoint(damaged); }, "describes a model of", "the file holds"));
  std::ofstream((dir / "garbage.safetensors").string()) << "not a checkpoint at all";
  EXPECT_TRUE(test::throws_error([&] { load_checkpoint((dir / "garbage.safetensors").string()); }, "garbage.safetensors"));
  // A kind this build does not know, and a config its kind rejects, name the file.
  nn::SafetensorsContents contents = nn::load_safetensors((dir / "checkpoint.safetensors").string());
  contents.metadata["model_kind"] = "rnn";
  nn::save_safetensors((dir / "rnn.safetensors").string(), contents.tensors, contents.metadata);
  EXPECT_TRUE(test::throws_error([&] { load_checkpoint((dir / "rnn.safetensors").string()); }, "rnn.safetensors",
                                 "unknown model_kind \"rnn\""));
  contents.metadata["model_kind"] = "gpt";  // a Mamba config read as a GPT's
  nn::save_safetensors((dir / "mixed.safetensors").string(), contents.tensors, contents.metadata);
  EXPECT_TRUE(test::throws_error([&] { model_from_checkpoint(load_checkpoint((dir / "mixed.safetensors").string())); },
                                 "mixed.safetensors", "GPTConfig: unknown field"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mg::apps
