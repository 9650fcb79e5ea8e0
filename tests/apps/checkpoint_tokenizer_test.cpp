// Checkpoints keep their tokenizer whatever the model kind (a character vocabulary or a BPE's
// tokenizer.json), and files written before model kinds and stored tokenizers existed still load.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "apps/common/char_tokenizer.h"
#include "apps/common/checkpoint.h"
#include "apps/common/model_loading.h"
#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "models/gpt/model.h"
#include "nn/safetensors.h"
#include "tensor/factory.h"
#include "test_util.h"
#include "text/bpe_tokenizer.h"

namespace mg::apps {
namespace {

namespace fs = std::filesystem;

const fs::path kHfTiny = fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "hf_mamba" / "tiny";

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("mg_checkpoint_tokenizer_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string text() {
  std::string t;
  for (int i = 0; i < 200; ++i) t += "the cat sat on the mat. ";
  return t;
}

TrainOptions tiny_mamba(const fs::path& out) {
  TrainOptions o;
  o.model.d_model = 8, o.model.n_layer = 1, o.model.d_state = 4;
  o.steps = 3, o.batch = 2, o.seq_len = 16, o.warmup = 1;
  o.eval_every = 3, o.eval_batches = 1, o.save_every = 3, o.log_every = 3;
  o.out_dir = out.string();
  o.progress = false;
  return o;
}

// A GPT of the tiny fixture's BPE, its rows `vocab_size`, saved with that tokenizer.
std::string save_gpt_with_bpe(const fs::path& dir, int64_t vocab_size) {
  gpt::GPTConfig config;
  config.vocab_size = vocab_size;
  config.n_embd = 8, config.n_layer = 1, config.n_head = 2, config.n_positions = 16;
  Generator gen(1);
  gpt::GPT model(config, gen);
  CheckpointInfo info;
  info.tokenizer_json = read_text_file((kHfTiny / "tokenizer.json").string());
  info.train_options = "{}";
  const std::string path = (dir / ("gpt_" + std::to_string(vocab_size) + ".safetensors")).string();
  save_checkpoint(path, model, nullptr, info);
  return path;
}

TEST(CheckpointTokenizer, AGptKeepsABpeTokenizer) {
  const fs::path dir = fresh_dir("gpt_bpe");
  const text::BpeTokenizer reference = text::BpeTokenizer::load((kHfTiny / "tokenizer.json").string());
  const std::string path = save_gpt_with_bpe(dir, reference.vocab_size());

  LoadedModel loaded = load_model("", path);
  EXPECT_EQ(loaded.model->kind(), "gpt");
  ASSERT_NE(dynamic_cast<const text::BpeTokenizer*>(loaded.tokenizer.get()), nullptr);
  EXPECT_EQ(loaded.tokenizer->encode("Hello world"), reference.encode("Hello world"));
  EXPECT_EQ(loaded.eos_token_id, reference.token_id("<|endoftext|>"));
  // Generation runs on the BPE's ids (the KV cache path).
  std::vector<int64_t> ids = loaded.tokenizer->encode("Hello world");
  Tensor logits = loaded.model->start_generation(1)->feed(from_vector(ids, {1, static_cast<int64_t>(ids.size())}));
  EXPECT_EQ(logits.shape(), (Shape{1, reference.vocab_size()}));

  // A model with fewer rows than its tokenizer has tokens is refused, naming the file.
  const std::string small = save_gpt_with_bpe(dir, reference.vocab_size() - 1);
  EXPECT_TRUE(test::throws_error([&] { load_model("", small); }, small + ": its tokenizer has",
                                 "gpt config says vocab_size"));
  fs::remove_all(dir);
}

TEST(CheckpointTokenizer, FilesFromBeforeModelKindsAndStoredTokenizersLoadAsCharacterMambas) {
  const fs::path dir = fresh_dir("old_format");
  TrainResult run = train(tiny_mamba(dir), text());
  // The format before either change: exactly these metadata keys (no model_kind, no tokenizer,
  // no model_rng_state, no run_state), the config MambaConfig's JSON, as now.
  nn::SafetensorsContents contents = nn::load_safetensors(run.checkpoint_path);
  for (const char* key : {"model_kind", "tokenizer", "model_rng_state", "run_state"}) contents.metadata.erase(key);
  std::set<std::string> keys;
  for (const auto& entry : contents.metadata) keys.insert(entry.first);
  EXPECT_EQ(keys, (std::set<std::string>{"format", "config", "vocabulary", "step", "rng_state", "train_options"}));
  nn::save_safetensors(run.checkpoint_path, contents.tensors, contents.metadata);

  LoadedModel loaded = load_model("", run.checkpoint_path);
  EXPECT_EQ(loaded.model->kind(), "mamba");
  ASSERT_NE(dynamic_cast<const CharTokenizer*>(loaded.tokenizer.get()), nullptr);
  EXPECT_EQ(loaded.tokenizer->encode("the mat"), CharTokenizer::from_text(text()).encode("the mat"));
  EXPECT_FALSE(loaded.eos_token_id.has_value());

  // Resuming it continues the run, and the next checkpoint is in today's format.
  TrainOptions resume = tiny_mamba(dir);
  resume.steps = 5;
  resume.given = {"steps"};  // (as the CLI marks a flag given again: it overrides the checkpoint's)
  resume.resume = run.checkpoint_path;
  TrainResult resumed = train(resume, text());
  EXPECT_EQ(resumed.first_step, 3);
  EXPECT_EQ(resumed.last_step, 5);
  LoadedCheckpoint now = load_checkpoint(resumed.checkpoint_path);
  EXPECT_EQ(now.info.model_kind, "mamba");
  EXPECT_EQ(now.info.vocabulary, CharTokenizer::from_text(text()).vocabulary());
  EXPECT_TRUE(now.info.tokenizer_json.empty());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mg::apps
