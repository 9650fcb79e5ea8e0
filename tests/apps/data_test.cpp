// Finding and downloading the corpus: $MG_DATA_DIR is where the data lives, and a download is
// kept only if its size and SHA-256 are the known file's. The downloads here are file:// URLs
// (curl reads them), so the tests need no network.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "apps/common/text_dataset.h"
#include "test_util.h"

namespace mg::apps {
namespace {

namespace fs = std::filesystem;

// Sets an environment variable for one scope, restoring what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { old_.empty() ? ::unsetenv(name_) : ::setenv(name_, old_.c_str(), 1); }

 private:
  const char* name_;
  std::string old_;
};

class DataDownload : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("curl --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl is not installed";
    dir_ = fs::temp_directory_path() / ("mambagrad_data_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data");
    corpus_ = read_text_file(test::source_path("data/tinyshakespeare.txt"));
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Offers `text` at a file:// URL and looks the corpus up in an empty $MG_DATA_DIR.
  std::string find_with_download_of(const std::string& text) {
    std::ofstream(dir_ / "served.txt", std::ios::binary) << text;
    ScopedEnv data_dir("MG_DATA_DIR", (dir_ / "data").string());
    ScopedEnv url("MG_DATA_URL", "file://" + (dir_ / "served.txt").string());
    return find_tinyshakespeare("");
  }
  size_t files_in_data_dir() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(dir_ / "data"), fs::directory_iterator{}));
  }

  fs::path dir_;
  std::string corpus_;
};

TEST_F(DataDownload, TheKnownFileIsKept) {
  std::string path = find_with_download_of(corpus_);
  EXPECT_EQ(path, (dir_ / "data" / "tinyshakespeare.txt").string());
  EXPECT_EQ(read_text_file(path), corpus_);
  EXPECT_EQ(files_in_data_dir(), 1u);  // no partial file beside it
}

TEST_F(DataDownload, TruncatedOrChangedFilesAreRefused) {
  auto truncated = [&] { find_with_download_of(corpus_.substr(0, 1000)); };
  EXPECT_TRUE(test::throws_error(truncated, "1000 bytes, expected 1115394", "truncated"));
  EXPECT_EQ(files_in_data_dir(), 0u);
  std::string changed = corpus_;
  changed[500000] ^= 1;  // one bit: the same size, another SHA-256
  EXPECT_TRUE(test::throws_error([&] { find_with_download_of(changed); }, "SHA-256", "expected 86c4e6aa"));
  EXPECT_EQ(files_in_data_dir(), 0u);
}

TEST_F(DataDownload, MissingEverywhereSaysWhereItLookedAndWhatToDo) {
  ScopedEnv data_dir("MG_DATA_DIR", (dir_ / "data").string());
  ScopedEnv url("MG_DATA_URL", "file://" + (dir_ / "nothing-here.txt").string());
  EXPECT_TRUE(test::throws_error([] { find_tinyshakespeare(""); }, "could not download", "MG_DATA_DIR"));
  EXPECT_EQ(files_in_data_dir(), 0u);
}

TEST(DataLookup, DataDirIsTheOnlyPlaceLookedWhenSet) {
  fs::path dir = fs::temp_directory_path() / ("mambagrad_data_dir_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tinyshakespeare.txt") << "to be or not to be";
  ScopedEnv data_dir("MG_DATA_DIR", dir.string());
  EXPECT_EQ(read_text_file(find_tinyshakespeare("")), "to be or not to be");
  fs::remove_all(dir);
}

TEST(DataLookup, TheCommittedCorpusIsFoundWithoutAnyEnvironment) {
  if (std::getenv("MG_DATA_DIR")) GTEST_SKIP() << "MG_DATA_DIR is set";
  std::string text = read_text_file(find_tinyshakespeare(""));
  EXPECT_EQ(text.size(), 1115394u);
}

}  // namespace
}  // namespace mg::apps
