#include "apps/common/text_dataset.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "nn/atomic_file.h"
#include "nn/sha256.h"
#include "tensor/factory.h"

#ifndef MG_SOURCE_DIR
#define MG_SOURCE_DIR "."
#endif

namespace mg::apps {

namespace fs = std::filesystem;

namespace {
constexpr const char* kFileName = "tinyshakespeare.txt";
constexpr const char* kUrl = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";
// The known file (the copy committed in data/ has the same bytes): a download must match both.
constexpr uint64_t kBytes = 1115394;
constexpr const char* kSha256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed";

// Runs a program found on PATH with these arguments (no shell, so no quoting), its stderr
// silenced; true if it ran and exited with status 0.
bool run_quietly(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) return false;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Downloads `url` (curl, else wget) to "<target>.partial", checks its size and SHA-256, and only
// then renames it to `target`. Throws mg::Error saying what went wrong; leaves no partial file.
void download_verified(const std::string& url, const fs::path& target) {
  fs::create_directories(target.parent_path());
  fs::path partial = target;
  partial += ".partial";
  std::error_code ec;
  const bool fetched = (run_quietly({"curl", "-fsSL", "--max-time", "120", "-o", partial.string(), url}) ||
                        run_quietly({"wget", "-q", "-T", "120", "-O", partial.string(), url})) &&
                       fs::is_regular_file(partial, ec);
  std::string text = fetched ? read_text_file(partial.string()) : std::string();
  fs::remove(partial, ec);
  MG_CHECK(fetched, "data: could not download ", url, " (no network, or neither curl nor wget is installed)");
  MG_CHECK(text.size() == kBytes, "data: the download from ", url, " has ", text.size(), " bytes, expected ", kBytes,
           text.size() < kBytes ? " (truncated)" : "", "; not using it");
  const std::string digest = nn::sha256_hex(text);
  MG_CHECK(digest == kSha256, "data: the download from ", url, " has SHA-256 ", digest, ", expected ", kSha256,
           " (a different or corrupted file); not using it");
  nn::write_file_atomically(target.string(), text);  // only a verified file gets the real name
}
}  // namespace

std::string find_tinyshakespeare(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    MG_CHECK(fs::is_regular_file(explicit_path), "data: file not found: ", explicit_path);
    return explicit_path;
  }
  // $MG_DATA_DIR, when set, is where the data lives: look nowhere else, and download there.
  const char* data_dir = std::getenv("MG_DATA_DIR");
  std::vector<fs::path> candidates;
  if (data_dir && *data_dir) {
    candidates.push_back(fs::path(data_dir) / kFileName);
  } else {
    candidates.push_back(fs::path("data") / kFileName);
    candidates.push_back(fs::path(MG_SOURCE_DIR) / "data" / kFileName);  // the copy committed in the checkout
  }
  std::string looked;
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p)) return p.lexically_normal().string();
    looked += (looked.empty() ? "" : ", ") + p.lexically_normal().string();
  }
  const fs::path target = candidates.front();
  const char* url_override = std::getenv("MG_DATA_URL");  // a mirror (or, in tests, a file:// URL)
  const std::string url = url_override && *url_override ? url_override : kUrl;
  std::fprintf(stderr, "data: %s not found (looked in %s); downloading it to %s\n", kFileName, looked.c_str(),
               target.c_str());
  try {
    download_verified(url, target);
  } catch (const Error& e) {
    throw Error(str(e.what(), ". Put ", kFileName, " into data/ or into the directory $MG_DATA_DIR names",
                    " (or give `mambagrad train --data PATH`)"));
  }
  return target.string();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MG_CHECK(in.good(), "data: cannot open ", path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TextSplits split_90_10(const std::vector<int64_t>& ids) {
  size_t n = ids.size() * 9 / 10;
  return {std::vector<int64_t>(ids.begin(), ids.begin() + n), std::vector<int64_t>(ids.begin() + n, ids.end())};
}

namespace {
Batch gather(const std::vector<int64_t>& ids, const std::vector<int64_t>& starts, int64_t seq_len) {
  int64_t batch = static_cast<int64_t>(starts.size());
  std::vector<int64_t> inputs(batch * seq_len), targets(batch * seq_len);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq_len; ++t) {
      inputs[b * seq_len + t] = ids[starts[b] + t];
      targets[b * seq_len + t] = ids[starts[b] + t + 1];
    }
  return {from_vector(inputs, {batch, seq_len}), from_vector(targets, {batch, seq_len})};
}

void check_window(const std::vector<int64_t>& ids, int64_t batch, int64_t seq_len) {
  MG_CHECK(batch > 0 && seq_len > 0, "data: batch and seq_len must be positive, got ", batch, " and ", seq_len);
  MG_CHECK(static_cast<int64_t>(ids.size()) > seq_len, "data: a split of ", ids.size(),
           " tokens is too short for windows of ", seq_len, " (+1 target)");
}
}  // namespace

Batch random_batch(const std::vector<int64_t>& ids, int64_t batch, int64_t seq_len, Generator& gen) {
  check_window(ids, batch, seq_len);
  std::vector<int64_t> starts(batch);
  for (auto& s : starts) s = gen.next_int(0, static_cast<int64_t>(ids.size()) - seq_len);
  return gather(ids, starts, seq_len);
}

Batch fixed_batch(const std::vector<int64_t>& ids, int64_t batch, int64_t seq_len, int64_t index, int64_t count) {
  check_window(ids, batch, seq_len);
  int64_t span = static_cast<int64_t>(ids.size()) - seq_len;  // valid starts: [0, span)
  std::vector<int64_t> starts(batch);
  for (int64_t b = 0; b < batch; ++b) starts[b] = (index * batch + b) * span / std::max<int64_t>(count * batch, 1);
  return gather(ids, starts, seq_len);
}

}  // namespace mg::apps
