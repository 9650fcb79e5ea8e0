// Byte-level BPE encoding speed (text/bpe_tokenizer.h) on English text, one core. bytes/s = bytes
// of input text encoded per second. The target: >= 5 MB/s.
//   encode_warm   one tokenizer encodes the text again and again (its piece cache warm: a long
//                 run over a corpus, or a server)
//   encode_cold   a fresh tokenizer for every pass (the cache starts empty: a one-off command)
//   split_only    the pre-tokenizer's split alone (the scanner; the floor under BPE)
// Tokenizers: "fixture" is tests/fixtures/bpe/tokenizer.json (3k tokens); "file" is the one named
// by $MG_TOKENIZER_JSON (e.g. GPT-NeoX's 50k-token file) when set.
// The text: 1 MB of TinyShakespeare, found in $MG_DATA_DIR, data/ or ../shared/data/.
//   build/cpu/benchmarks/bpe_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "text/bpe_tokenizer.h"
#include "text/pre_tokenizer.h"

namespace {

namespace fs = std::filesystem;
using mg::text::BpeTokenizer;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

const std::string& english() {
  static const std::string text = [] {
    const fs::path source = MG_SOURCE_DIR;
    std::vector<fs::path> places;
    if (const char* dir = std::getenv("MG_DATA_DIR")) places.emplace_back(dir);
    places.insert(places.end(), {"data", source / "data", source.parent_path() / "shared" / "data",
                                 source.parent_path().parent_path() / "shared" / "data"});
    for (const fs::path& dir : places)
      if (fs::exists(dir / "tinyshakespeare.txt")) return read(dir / "tinyshakespeare.txt").substr(0, 1 << 20);
    return std::string();
  }();
  return text;
}

std::string tokenizer_path(int which) {
  if (which == 0)
    return (fs::path(MG_SOURCE_DIR) / "tests" / "fixtures" / "bpe" / "tokenizer.json").string();
  const char* file = std::getenv("MG_TOKENIZER_JSON");
  return file ? file : "";
}

bool ready(benchmark::State& state, const std::string& path) {
  if (english().empty()) return state.SkipWithError("tinyshakespeare.txt not found (set MG_DATA_DIR)"), false;
  if (path.empty()) return state.SkipWithError("set MG_TOKENIZER_JSON to a tokenizer.json"), false;
  state.SetLabel(state.range(0) == 0 ? "fixture" : "file");
  return true;
}

void BM_encode_warm(benchmark::State& state) {
  const std::string path = tokenizer_path(static_cast<int>(state.range(0)));
  if (!ready(state, path)) return;
  const BpeTokenizer tokenizer = BpeTokenizer::load(path);
  size_t tokens = tokenizer.encode(english()).size();  // warms the cache
  for (auto _ : state) benchmark::DoNotOptimize(tokens = tokenizer.encode(english()).size());
  state.counters["bytes_per_token"] = static_cast<double>(english().size()) / static_cast<double>(tokens);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(english().size()));
}

void BM_encode_cold(benchmark::State& state) {
  const std::string path = tokenizer_path(static_cast<int>(state.range(0)));
  if (!ready(state, path)) return;
  const BpeTokenizer loaded = BpeTokenizer::load(path);
  for (auto _ : state) {
    state.PauseTiming();
    const BpeTokenizer tokenizer = loaded;  // a copy starts with an empty cache
    state.ResumeTiming();
    benchmark::DoNotOptimize(tokenizer.encode(english()).size());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(english().size()));
}

void BM_split_only(benchmark::State& state) {
  if (english().empty()) return state.SkipWithError("tinyshakespeare.txt not found (set MG_DATA_DIR)");
  std::vector<std::string_view> pieces;
  for (auto _ : state) {
    pieces.clear();
    mg::text::byte_level_split(english(), pieces);
    benchmark::DoNotOptimize(pieces.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(english().size()));
}

void BM_load(benchmark::State& state) {
  const std::string path = tokenizer_path(static_cast<int>(state.range(0)));
  if (!ready(state, path)) return;
  for (auto _ : state) benchmark::DoNotOptimize(BpeTokenizer::load(path).vocab_size());
}

BENCHMARK(BM_encode_warm)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_encode_cold)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_split_only)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_load)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
