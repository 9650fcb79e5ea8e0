// Fine-tuning a pretrained model (train --init-from), the checkpoints it writes (with the model's
// tokenizer), and exporting checkpoints as Hugging Face directories (export --hf).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "apps/common/char_tokenizer.h"
#include "apps/common/checkpoint.h"
#include "apps/common/model_loading.h"
#include "apps/common/text_dataset.h"
#include "apps/common/trainer.h"
#include "models/mamba/pretrained.h"
#include "test_util.h"
#include "text/bpe_tokenizer.h"

namespace mg::apps {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "hf_mamba" / name; }

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::path(::testing::TempDir()) / ("mg_pretrained_apps_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string text() {
  std::string t;
  for (int i = 0; i < 60; ++i) t += "Hello world, the Mamba model reads text one token at a time. ";
  return t;
}

TrainOptions fine_tune_options(const fs::path& out) {
  TrainOptions o;
  o.init_from = fixture("tiny").string();
  o.steps = 8;
  o.batch = 2;
  o.seq_len = 16;
  o.warmup = 1;
  o.eval_every = 4;
  o.eval_batches = 1;
  o.save_every = 4;
  o.log_every = 4;
  o.lr = 3e-3;
  o.out_dir = out.string();
  o.progress = false;
  return o;
}

TEST(FineTune, StartsFromThePretrainedWeightsWithItsTokenizerAndLearns) {
  const fs::path out = fresh_dir("fine_tune");
  TrainResult result = train(fine_tune_options(out), text());
  ASSERT_EQ(result.last_step, 8);
  EXPECT_LT(result.losses.back(), result.losses.front());

  // The checkpoint carries the model's tokenizer.json, so generate and resume need nothing else.
  LoadedCheckpoint checkpoint = load_checkpoint(result.checkpoint_path);
  EXPECT_EQ(checkpoint.info.tokenizer_json, read_text_file(fixture("tiny").string() + "/tokenizer.json"));
  EXPECT_EQ(checkpoint.info.model_kind, "mamba");
  EXPECT_EQ(mamba::MambaConfig::from_json(checkpoint.info.config).d_model, 16);
  LoadedModel loaded = load_model("", result.checkpoint_path);
  const text::BpeTokenizer reference = text::BpeTokenizer::load(fixture("tiny").string() + "/tokenizer.json");
  EXPECT_EQ(loaded.tokenizer->encode("Hello world"), reference.encode("Hello world"));
  EXPECT_EQ(loaded.eos_token_id, 0);

  // The run started from the pretrained weights: 8 AdamW steps of lr <= 3e-3 move no weight by
  // more than 8 x 3e-3 (a fresh initialization would differ by far more).
  mamba::PretrainedModel pretrained = mamba::load_pretrained(fixture("tiny").string());
  for (const auto& [name, mine] : loaded.model->named_parameters()) {
    const std::vector<float> a = mine.contiguous().reshape({-1}).to_vector<float>();
    const std::vector<float> b = pretrained.model->state_dict().at(name).contiguous().reshape({-1}).to_vector<float>();
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
    EXPECT_LT(worst, 8 * 3e-3 + 1e-6) << name;
  }

  // Resuming continues the same run, with the same tokenizer.
  TrainOptions resume = fine_tune_options(out);
  resume.resume = result.checkpoint_path;
  resume.steps = 10;
  resume.given = {"steps"};  // (as the CLI marks a flag given again: it overrides the checkpoint's)
  TrainResult resumed = train(resume, text());
  EXPECT_EQ(resumed.first_step, 8);
  EXPECT_EQ(resumed.last_step, 10);
}

TEST(Export, CharacterCheckpointBecomesALoadableDirectoryWithItsTokenizer) {
  const fs::path out = fresh_dir("export_char");
  TrainOptions o = fine_tune_options(out / "run");
  o.init_from.clear();
  o.model.d_model = 8;
  o.model.n_layer = 1;
  o.model.d_state = 4;
  TrainResult run = train(o, text());
  LoadedModel ours = load_model("", run.checkpoint_path);
  auto& our_mamba = dynamic_cast<mamba::MambaLM&>(*ours.model);

  LoadedCheckpoint checkpoint = load_checkpoint(run.checkpoint_path);
  const fs::path hf = out / "hf";
  mamba::save_pretrained(our_mamba, hf.string());
  const std::string json = CharTokenizer::from_vocabulary(checkpoint.info.vocabulary).to_tokenizer_json();
  const text::BpeTokenizer as_bpe = text::BpeTokenizer::from_json(json, "exported");
  // The exported tokenizer.json gives the character ids, and the directory the same logits.
  const std::string sample = "the Mamba reads";
  EXPECT_EQ(as_bpe.encode(sample), ours.tokenizer->encode(sample));
  EXPECT_EQ(as_bpe.decode(as_bpe.encode(sample)), sample);
  mamba::PretrainedModel exported = mamba::load_pretrained(hf.string());
  Tensor ids = from_vector(ours.tokenizer->encode(sample), {1, static_cast<int64_t>(sample.size())});
  EXPECT_TRUE(test::all_close(exported.model->forward(ids), our_mamba.forward(ids), 0, 0));
  EXPECT_FALSE(exported.info.eos_token_id.has_value());  // null: a character model has no end of text
}

}  // namespace
}  // namespace mg::apps
