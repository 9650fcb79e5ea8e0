#include "apps/common/text_dataset.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tensor/factory.h"

#ifndef MG_SOURCE_DIR
#define MG_SOURCE_DIR "."
#endif

namespace mg::apps {

namespace fs = std::filesystem;

namespace {
constexpr const char* kFileName = "tinyshakespeare.txt";
constexpr const char* kUrl = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt";

bool download(const std::string& url, const fs::path& target) {
  fs::create_directories(target.parent_path());
  fs::path partial = target;
  partial += ".partial";
  std::string quoted = "'" + partial.string() + "'";
  std::string command = "curl -fsSL --max-time 120 -o " + quoted + " '" + url + "' 2>/dev/null || wget -q -T 120 -O " +
                        quoted + " '" + url + "' 2>/dev/null";
  if (std::system(command.c_str()) != 0 || !fs::exists(partial) || fs::file_size(partial) == 0) {
    fs::remove(partial);
    return false;
  }
  fs::rename(partial, target);  // only a complete download gets the real name
  return true;
}
}  // namespace

std::string find_tinyshakespeare(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    MG_CHECK(fs::is_regular_file(explicit_path), "data: file not found: ", explicit_path);
    return explicit_path;
  }
  std::vector<fs::path> candidates;
  if (const char* dir = std::getenv("MG_DATA_DIR")) candidates.push_back(fs::path(dir) / kFileName);
  candidates.push_back(fs::path("data") / kFileName);
  candidates.push_back(fs::path(MG_SOURCE_DIR) / "data" / kFileName);
  candidates.push_back(fs::path(MG_SOURCE_DIR) / ".." / "shared" / "data" / kFileName);
  candidates.push_back(fs::path("..") / "shared" / "data" / kFileName);
  std::string looked;
  for (const fs::path& p : candidates) {
    if (fs::is_regular_file(p)) return p.lexically_normal().string();
    looked += (looked.empty() ? "" : ", ") + p.lexically_normal().string();
  }
  fs::path target = fs::path("data") / kFileName;
  std::fprintf(stderr, "data: %s not found (looked in %s); downloading it to %s\n", kFileName, looked.c_str(),
               target.c_str());
  MG_CHECK(download(kUrl, target), "data: could not find ", kFileName, " (looked in ", looked,
           ") nor download it from ", kUrl, "; pass --data PATH or set MG_DATA_DIR");
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
