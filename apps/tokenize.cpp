// `mambagrad tokenize`: text on standard input -> its token ids on one line; with --decode, ids
// -> text. For debugging prompts and data: what the model will see, exactly.
#include "apps/tokenize.h"

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>

#include "apps/common/model_loading.h"
#include "text/bpe_tokenizer.h"

namespace mg::apps {

void add_tokenize_command(CLI::App& app) {
  struct Flags {
    std::string model_dir, tokenizer_file, checkpoint;
    bool decode = false, skip_special = false;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand(
      "tokenize", "Print the token ids of the text on standard input (one line, separated by spaces); --decode: ids to text");
  auto* model = cmd->add_option("--model", flags->model_dir, "Hugging Face model directory (its tokenizer.json)")
                    ->check(CLI::ExistingDirectory);
  auto* tokenizer = cmd->add_option("--tokenizer", flags->tokenizer_file, "A tokenizer.json")->check(CLI::ExistingFile);
  auto* checkpoint = cmd->add_option("--checkpoint", flags->checkpoint, "A checkpoint written by `mambagrad train`")
                         ->check(CLI::ExistingFile);
  model->excludes(tokenizer, checkpoint);
  tokenizer->excludes(checkpoint);
  cmd->add_flag("--decode", flags->decode, "Read token ids (separated by white space) and print their text");
  cmd->add_flag("--skip-special", flags->skip_special,
                "With --decode: leave out special tokens such as <|endoftext|> (as the tokenizers library's decode does)");
  cmd->callback([flags] {
    MG_CHECK(!flags->model_dir.empty() || !flags->tokenizer_file.empty() || !flags->checkpoint.empty(),
             "tokenize: give --model DIR, --tokenizer FILE or --checkpoint FILE");
    std::unique_ptr<text::Tokenizer> tokenizer = load_tokenizer(flags->model_dir, flags->tokenizer_file, flags->checkpoint);
    const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (!flags->decode) {
      std::string line;
      for (int64_t id : tokenizer->encode(input)) line += (line.empty() ? "" : " ") + std::to_string(id);
      std::printf("%s\n", line.c_str());
      return;
    }
    std::vector<int64_t> ids;
    std::istringstream words(input);
    for (std::string word; words >> word;) {
      size_t used = 0;
      int64_t id = -1;
      try {
        id = std::stoll(word, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      MG_CHECK(used == word.size() && used > 0, "tokenize --decode: \"", word, "\" is not a token id");
      ids.push_back(id);
    }
    const auto* bpe = dynamic_cast<const text::BpeTokenizer*>(tokenizer.get());
    const std::string text = bpe ? bpe->decode(ids, flags->skip_special) : tokenizer->decode(ids);
    std::fwrite(text.data(), 1, text.size(), stdout);
  });
}

}  // namespace mg::apps
