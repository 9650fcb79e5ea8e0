#include "text/bpe_tokenizer.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/error.h"
#include "tensor/json_integer.h"
#include "text/byte_level.h"
#include "text/pre_tokenizer.h"
#include "text/unicode.h"
#include "text/utf8.h"

namespace mg::text {

namespace {
using nlohmann::json;

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(str("tokenizer ", source, ": ", problem));
}

std::string type_of(const json& component) {
  return component.is_object() && component.contains("type") && component["type"].is_string()
             ? component["type"].get<std::string>()
             : std::string("(no type)");
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  return j.contains(key) && !j[key].is_null() ? j[key].get<T>() : fallback;
}

// NFC, or nothing; refuses other normalizers.
bool parse_normalizer(const json& n, const std::string& source) {
  if (n.is_null()) return false;
  const std::string type = type_of(n);
  if (type == "NFC") return true;
  if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    bool nfc = false;
    for (const json& inner : n["normalizers"]) nfc = parse_normalizer(inner, source) || nfc;
    return nfc;
  }
  fail(source, str("normalizer \"", type, "\" is not supported (only NFC, as GPT-NeoX's tokenizer uses)"));
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& merges, const std::string& source) {
  if (!merges.is_array()) fail(source, "model.merges must be a list");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_string()) {  // "a b" (tokenizers < 0.20)
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() || s.find(' ', space + 1) != std::string::npos)
        fail(source, str("merge ", out.size(), " (\"", s, "\") is not two tokens separated by one space"));
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(source, str("merge ", out.size(), " is neither \"a b\" nor [\"a\", \"b\"]: ", m.dump()));
    }
  }
  return out;
}

BpeModel parse_model(const json& model, const std::string& source) {
  if (!model.is_object()) fail(source, "has no \"model\" object");
  const std::string type = model.contains("type") ? type_of(model) : "BPE";
  if (type != "BPE") fail(source, str("model \"", type, "\" is not supported (only byte-level BPE)"));
  if (get_or<double>(model, "dropout", 0.0) != 0.0) fail(source, "BPE dropout is not supported (it makes encoding random)");
  if (!get_or<std::string>(model, "continuing_subword_prefix", "").empty() ||
      !get_or<std::string>(model, "end_of_word_suffix", "").empty())
    fail(source, "continuing_subword_prefix and end_of_word_suffix are not supported (byte-level BPE has none)");
  if (get_or<bool>(model, "byte_fallback", false)) fail(source, "byte_fallback is not supported");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(source, "model.vocab must be an object");
  std::vector<std::pair<std::string, int64_t>> vocab;
  vocab.reserve(model["vocab"].size());
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!json_integer_fits<int64_t>(id))  // (a double or a number beyond int64 would be cast: tensor/json_integer.h)
      fail(source, str("vocabulary entry \"", token, "\" has an id that is not an integer within int64: ", id.dump()));
    vocab.emplace_back(token, id.get<int64_t>());
  }
  BpeModel::Options options;
  if (model.contains("unk_token") && model["unk_token"].is_string()) options.unk_token = model["unk_token"].get<std::string>();
  options.fuse_unk = get_or<bool>(model, "fuse_unk", false);
  options.ignore_merges = get_or<bool>(model, "ignore_merges", false);
  try {
    return BpeModel(vocab, parse_merges(model.contains("merges") ? model["merges"] : json::array(), source), options);
  } catch (const Error& e) {
    fail(source, e.what());
  }
}
}  // namespace

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MG_CHECK(in.good(), "tokenizer ", path, ": cannot open the file");
  std::stringstream text;
  text << in.rdbuf();
  return from_json(text.str(), path);
}

BpeTokenizer BpeTokenizer::from_json(std::string_view text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail(source, str("not valid JSON (", e.what(), ")"));
  }
  if (!j.is_object()) fail(source, "not a JSON object");
  BpeTokenizer t;
  try {
    t.nfc_ = parse_normalizer(j.value("normalizer", json()), source);
    const json pre = j.value("pre_tokenizer", json());
    if (type_of(pre) != "ByteLevel")
      fail(source, str("pre_tokenizer \"", type_of(pre), "\" is not supported (only ByteLevel)"));
    t.add_prefix_space_ = get_or<bool>(pre, "add_prefix_space", false);
    t.use_regex_ = get_or<bool>(pre, "use_regex", true);
    for (const char* key : {"decoder", "post_processor"}) {
      const json component = j.value(key, json());
      if (!component.is_null() && type_of(component) != "ByteLevel")
        fail(source, str(key, " \"", type_of(component), "\" is not supported (only ByteLevel)"));
    }
    t.model_ = parse_model(j.value("model", json()), source);

    std::vector<std::pair<std::string, int64_t>> spellings;  // id -> spelling, model then added
    for (const auto& [token, id] : j["model"]["vocab"].items()) spellings.emplace_back(token, id.get<int64_t>());
    const json added = j.value("added_tokens", json::array());
    if (!added.is_array()) fail(source, "added_tokens must be a list");
    for (const json& a : added) {
      AddedToken token;
      if (!a.is_object() || !a.contains("id") || !json_integer_fits<int64_t>(a["id"]))  // found by fuzz_bpe_tokenizer
        fail(source, str("an added token's id must be an integer within int64: ", a.dump()));
      token.id = a.at("id").get<int64_t>();
      token.content = a.at("content").get<std::string>();
      token.special = get_or<bool>(a, "special", false);
      token.single_word = get_or<bool>(a, "single_word", false);
      token.lstrip = get_or<bool>(a, "lstrip", false);
      token.rstrip = get_or<bool>(a, "rstrip", false);
      token.normalized = get_or<bool>(a, "normalized", !token.special);
      if (token.id < 0 || token.id >= (int64_t{1} << 31)) fail(source, str("added token id ", token.id, " is out of range"));
      if (token.single_word)
        fail(source, str("added token \"", token.content, "\" has single_word, which is not supported"));
      if (!is_valid_utf8(token.content)) fail(source, "an added token is not valid UTF-8");
      t.added_.push_back(token);
      // The reference maps a normalized token's id to its normalized content (decode shows that).
      spellings.emplace_back(token.normalized && t.nfc_ ? nfc(token.content) : token.content, token.id);
    }
    int64_t size = 0;
    for (const auto& [token, id] : spellings) size = std::max(size, id + 1);
    t.token_bytes_.assign(size, {});
    t.spelling_.assign(size, {});
    t.has_token_.assign(size, false);
    t.special_.assign(size, false);
    for (const auto& [token, id] : spellings) {  // added tokens come last and win, as in the reference
      t.spelling_[id] = token;
      t.token_bytes_[id] = byte_level_decode(token);
      t.has_token_[id] = true;
    }
    for (const AddedToken& a : t.added_)
      if (a.special)
        for (int64_t id = 0; id < size; ++id)
          if (t.has_token_[id] && t.spelling_[id] == a.content) t.special_[id] = true;
  } catch (const json::exception& e) {
    fail(source, str("unexpected structure (", e.what(), ")"));
  }
  std::vector<std::pair<std::string, AddedToken>> raw, normalized;
  for (const AddedToken& a : t.added_) {
    if (a.normalized) normalized.emplace_back(t.nfc_ ? nfc(a.content) : a.content, a);
    else raw.emplace_back(a.content, a);
  }
  t.raw_matcher_ = AddedTokenMatcher(raw);
  t.normalized_matcher_ = AddedTokenMatcher(normalized);
  return t;
}

std::optional<int64_t> BpeTokenizer::token_id(std::string_view token) const {
  for (const AddedToken& a : added_)
    if (a.content == token) return a.id;
  if (std::optional<std::string> bytes = byte_level_bytes(token)) return model_.id_of(*bytes);
  return std::nullopt;
}

std::vector<int64_t> BpeTokenizer::encode(std::string_view text) const {
  const std::string valid = to_valid_utf8(text);
  std::vector<int64_t> ids;
  ids.reserve(valid.size() / 3 + 1);
  raw_matcher_.split(
      valid, [&](std::string_view segment) { encode_normalized(segment, ids); },
      [&](int64_t id) { ids.push_back(id); });
  return ids;
}

void BpeTokenizer::encode_normalized(std::string_view segment, std::vector<int64_t>& ids) const {
  const std::string normalized = nfc_ ? nfc(segment) : std::string(segment);
  normalized_matcher_.split(
      normalized, [&](std::string_view piece) { encode_pieces(piece, ids); }, [&](int64_t id) { ids.push_back(id); });
}

void BpeTokenizer::encode_pieces(std::string_view text, std::vector<int64_t>& ids) const {
  std::string prefixed;
  if (add_prefix_space_ && !text.starts_with(' ')) {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  if (!use_regex_) return model_.encode_piece(text, ids);
  thread_local std::vector<std::string_view> pieces;
  pieces.clear();
  byte_level_split(text, pieces);
  for (std::string_view piece : pieces) model_.encode_piece(piece, ids);
}

std::string BpeTokenizer::token_bytes(int64_t id) const {
  MG_CHECK(id >= 0 && id < vocab_size(), "tokenizer: id ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
  return token_bytes_[id];
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string bytes;
  for (int64_t id : ids) {
    MG_CHECK(id >= 0 && id < vocab_size(), "tokenizer: id ", id, " is outside the vocabulary [0, ", vocab_size(), ")");
    if (skip_special && special_[id]) continue;
    bytes += token_bytes_[id];
  }
  return to_valid_utf8(bytes);
}

}  // namespace mg::text
