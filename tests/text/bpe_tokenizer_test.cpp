// The byte-level BPE tokenizer against the `tokenizers` library: tests/fixtures/bpe/gen.py trains
// a small GPT-NeoX-style tokenizer and records the ids `tokenizers` gives a varied corpus
// (English, code, whitespace runs, digits, accents, CJK, emoji, invalid UTF-8, special and added
// tokens, random mixtures) and the text its decode gives id lists. Every one must match exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "text/bpe_tokenizer.h"

namespace mg::text {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path fixture_dir() { return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "bpe"; }

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

const json& cases() {
  static const json j = json::parse(read(fixture_dir() / "cases.json"));
  return j;
}

const BpeTokenizer& fixture_tokenizer() {
  static const BpeTokenizer t = BpeTokenizer::load((fixture_dir() / "tokenizer.json").string());
  return t;
}

std::vector<int64_t> ids_of(const json& j) { return j.get<std::vector<int64_t>>(); }

// Every encode case; returns how many matched (each mismatch is reported with its input).
void expect_encodes_like_reference(const BpeTokenizer& tokenizer) {
  for (const json& c : cases()["encode"]) {
    const std::string input = from_hex(c["input_hex"]);
    EXPECT_EQ(tokenizer.encode(input), ids_of(c["ids"])) << "input: \"" << input << "\"";
  }
}

TEST(BpeTokenizer, EncodesTheCorpusLikeTheReference) {
  const BpeTokenizer& t = fixture_tokenizer();
  EXPECT_EQ(t.vocab_size(), cases()["vocab_size"].get<int64_t>());
  ASSERT_GT(cases()["encode"].size(), 200u);
  expect_encodes_like_reference(t);
}

TEST(BpeTokenizer, EncodingTwiceUsesTheCacheAndGivesTheSameIds) {
  const BpeTokenizer& t = fixture_tokenizer();
  const std::string text = "the cache must not change anything: the the the";
  EXPECT_EQ(t.encode(text), t.encode(text));
}

TEST(BpeTokenizer, DecodesLikeTheReference) {
  const BpeTokenizer& t = fixture_tokenizer();
  for (const json& c : cases()["decode"]) {
    const std::vector<int64_t> ids = ids_of(c["ids"]);
    EXPECT_EQ(t.decode(ids), c["text"].get<std::string>()) << c["ids"].dump();
    EXPECT_EQ(t.decode(ids, /*skip_special=*/true), c["text_skip_special"].get<std::string>()) << c["ids"].dump();
  }
}

TEST(BpeTokenizer, StreamingGivesTheWholeDecode) {
  const BpeTokenizer& t = fixture_tokenizer();
  for (const json& c : cases()["decode"]) {
    StreamDecoder stream(t);
    std::string text;
    for (int64_t id : ids_of(c["ids"])) text += stream.push(id);
    text += stream.finish();
    EXPECT_EQ(text, c["text"].get<std::string>()) << c["ids"].dump();
  }
}

TEST(BpeTokenizer, ReadsTheOlderMergesSpelling) {
  // tokenizers < 0.20 wrote merges as "a b" strings (GPT-NeoX's file does); newer ones as pairs.
  json j = json::parse(read(fixture_dir() / "tokenizer.json"));
  ASSERT_TRUE(j["model"]["merges"][0].is_array());
  for (json& m : j["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  expect_encodes_like_reference(BpeTokenizer::from_json(j.dump()));
}

TEST(BpeTokenizer, SpecialTokensAreMatchedInTheRawText) {
  const BpeTokenizer& t = fixture_tokenizer();
  const int64_t eot = *t.token_id("<|endoftext|>");
  EXPECT_EQ(eot, 0);
  const std::vector<int64_t> ids = t.encode("a<|endoftext|>b");
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[1], eot);
  EXPECT_EQ(t.decode(ids), "a<|endoftext|>b");
  EXPECT_EQ(t.decode(ids, true), "ab");
}

TEST(BpeTokenizer, RefusesWhatItDoesNotImplement) {
  json base = json::parse(read(fixture_dir() / "tokenizer.json"));
  auto refused = [&](const std::function<void(json&)>& change, const std::string& expected) {
    json j = base;
    change(j);
    return test::throws_error([&] { BpeTokenizer::from_json(j.dump(), "changed.json"); }, "changed.json", expected);
  };
  EXPECT_TRUE(refused([](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "normalizer \"Lowercase\""));
  EXPECT_TRUE(refused([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "pre_tokenizer \"Whitespace\""));
  EXPECT_TRUE(refused([](json& j) { j["model"]["type"] = "WordPiece"; }, "model \"WordPiece\""));
  EXPECT_TRUE(refused([](json& j) { j["model"]["dropout"] = 0.1; }, "dropout"));
  EXPECT_TRUE(refused([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder \"WordPiece\""));
  EXPECT_TRUE(refused([](json& j) { j["added_tokens"][0]["single_word"] = true; }, "single_word"));
  EXPECT_TRUE(refused([](json& j) { j["model"]["merges"][5] = json::array({"zzzq", "qqqz"}); }, "not in the vocabulary"));
  EXPECT_TRUE(refused([](json& j) { j["model"]["merges"][5] = "abc"; }, "merge 5"));
  // Ids a C++ int64 cannot hold are errors, not casts (fuzz_bpe_tokenizer: an added token's id of
  // 3.02e23 was converted to int64, undefined behaviour).
  EXPECT_TRUE(refused([](json& j) { j["added_tokens"][2]["id"] = 3.02218e23; }, "added token's id must be an integer"));
  EXPECT_TRUE(refused([](json& j) { j["added_tokens"][2]["id"] = 2.5; }, "added token's id must be an integer"));
  EXPECT_TRUE(refused([](json& j) { j["model"]["vocab"]["!"] = 18446744073709551615ull; }, "not an integer within int64"));
  EXPECT_TRUE(test::throws_error([] { BpeTokenizer::from_json("{not json", "bad.json"); }, "bad.json", "not valid JSON"));
  EXPECT_TRUE(test::throws_error([] { BpeTokenizer::load("/nonexistent/tokenizer.json"); }, "/nonexistent/tokenizer.json",
                                 "cannot open"));
}

TEST(BpeTokenizer, DecodeRefusesIdsOutsideTheVocabulary) {
  const BpeTokenizer& t = fixture_tokenizer();
  EXPECT_TRUE(test::throws_error([&] { t.decode({1, t.vocab_size()}); }, "outside the vocabulary"));
  EXPECT_TRUE(test::throws_error([&] { t.token_bytes(-1); }, "outside the vocabulary"));
}

}  // namespace
}  // namespace mg::text
