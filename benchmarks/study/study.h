#pragma once
// What the parts of the Mamba-vs-attention study share (benchmarks/study/mamba_vs_attention.cpp is
// the program): the two models at equal size, where they run, and how results are written.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "models/gpt/config.h"
#include "models/language_model.h"
#include "models/mamba/config.h"
#include "tensor/device.h"

namespace mg::study {

namespace fs = std::filesystem;

inline const char* kMambaColor = "#1f77b4";
inline const char* kGptColor = "#d62728";
inline const char* kExtraColors[] = {"#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

// The pair of models a part compares, each pair at (nearly) equal parameter count:
//   "standard": the standard CPU Mamba (d_model 128, 4 layers: 474,880 parameters at vocab 65)
//               and the default GPT (112 wide, 3 layers, 4 heads: 477,792 at context 128);
//   "a":        config A's Mamba (configs/mamba-a.json: d_model 384, 6 layers: 5.81M) and a GPT
//               of its width with half its layers (384 wide, 3 layers, 6 heads of 64: 5.35M
//               without the position table), as the Mamba paper pairs them: a Mamba layer holds
//               ~6 d^2 weights, a Transformer block 12 d^2.
// On a GPU the standard pair is too small to measure anything but kernel launches.
struct ModelPair {
  std::string name;  // "standard" or "a"
  mamba::MambaConfig mamba;
  gpt::GPTConfig gpt;  // its n_positions is set by the part that builds it
  static ModelPair named(const std::string& name);  // throws mg::Error for an unknown name
  // "standard" on the CPU, "a" on a GPU: the default of --models.
  static std::string default_for(Device device) { return device.is_cpu() ? "standard" : "a"; }
};

// Builds kind "mamba" or "gpt" of the pair on `device`, the GPT with `positions` learned
// positions (the context the part needs).
std::shared_ptr<LanguageModel> make_study_model(const std::string& kind, const ModelPair& pair, int64_t positions,
                                                Device device, Generator& gen);

// Where a part writes: JSON (what it measured), a Markdown table to paste into
// docs/mamba_vs_attention.md, and SVG plots. A GPU's files carry "cuda" in their names, so they
// never replace the CPU's.
struct Output {
  fs::path dir, svg_dir;
  bool gpu = false;
  std::string file(const std::string& stem, const std::string& extension) const;  // "generation" -> generation_cuda.json
  std::string svg(const std::string& stem) const;  // "generation_speed" -> mamba_vs_attention[_cuda]_generation_speed.svg
  void write(const std::string& name, const std::string& text) const;  // into dir, atomically
  void write_svg(const std::string& name, const std::string& svg) const;  // into svg_dir, atomically
};

// "1 thread" / "2 threads" on the CPU (the OpenMP pool), "cuda:0 (NVIDIA H200)" on a GPU: where a
// part ran, kept in its JSON for the plots' titles.
std::string describe_device(Device device);

// Text for the Markdown tables: printf into a string; 1234567 -> "1,234,567"; bytes as "896 B",
// "360.0 KiB", "72.0 MiB", "3.1 GiB".
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string with_commas(int64_t n);
std::string format_bytes(double bytes);

// ---- the parts (each in its own file)
// A part measures, writes its JSON after every model (and, for train-length, every length), so
// that a run cut short keeps what it measured, then reports. A model that fails (out of memory,
// say) is recorded in the JSON with its error and the part goes on with the next; the part then
// throws mg::Error naming what failed, after its files are written.

struct GenerationOptions {
  int64_t max_position = 8192, window = 128;
  int repeats = 3;
};
void generation(const ModelPair& pair, const GenerationOptions& options, Device device, const Output& out);

struct TrainLengthOptions {
  int64_t tokens = 8192;
  std::vector<int64_t> lengths{256, 512, 1024, 2048, 4096, 8192};
  int repeats = 3, warmup = 1;
};
void train_length(const ModelPair& pair, const TrainLengthOptions& options, Device device, const Output& out);

// ---- reports (report.cpp): from a part's JSON alone, the fits (printed), the Markdown table and
// the plots. Each part ends with its report; `mamba_vs_attention report FILE.json` writes them
// again from files brought back from another machine. Throws mg::Error for JSON that is not a
// part's.
void report(const nlohmann::json& results, const Output& out);

}  // namespace mg::study
