#include "study.h"

#include <cstdarg>
#include <cstdio>

#include "models/gpt/model.h"
#include "models/mamba/model.h"
#include "nn/atomic_file.h"
#include "ops/cpu/parallel.h"
#include "tensor/error.h"

namespace mg::study {

ModelPair ModelPair::named(const std::string& name) {
  ModelPair pair{.name = name, .mamba = {}, .gpt = {}};
  if (name == "standard") return pair;  // both configs' defaults
  MG_CHECK(name == "a", "unknown model pair '", name, "' (expected standard or a)");
  pair.mamba.d_model = 384;  // configs/mamba-a.json
  pair.mamba.n_layer = 6;
  pair.gpt.n_embd = 384;
  pair.gpt.n_layer = 3;
  pair.gpt.n_head = 6;
  return pair;
}

std::shared_ptr<LanguageModel> make_study_model(const std::string& kind, const ModelPair& pair, int64_t positions,
                                                Device device, Generator& gen) {
  std::shared_ptr<LanguageModel> model;
  if (kind == "mamba") {
    model = std::make_shared<mamba::MambaLM>(pair.mamba, gen);
  } else {
    MG_CHECK(kind == "gpt", "unknown model kind '", kind, "'");
    gpt::GPTConfig config = pair.gpt;
    config.n_positions = positions;
    model = std::make_shared<gpt::GPT>(config, gen);
  }
  model->to(device);
  return model;
}

std::string Output::file(const std::string& stem, const std::string& extension) const {
  return stem + (gpu ? "_cuda" : "") + "." + extension;
}

std::string Output::svg(const std::string& stem) const {
  return std::string("mamba_vs_attention_") + (gpu ? "cuda_" : "") + stem + ".svg";
}

std::string describe_device(Device device) {
  if (device.is_cuda()) return device.str();
  const int threads = get_num_threads();
  return std::to_string(threads) + (threads == 1 ? " thread" : " threads");
}

void Output::write(const std::string& name, const std::string& text) const {
  fs::create_directories(dir);
  nn::write_file_atomically((dir / name).string(), text);
  std::printf("wrote %s\n", (dir / name).c_str());
}

void Output::write_svg(const std::string& name, const std::string& svg) const {
  fs::create_directories(svg_dir);
  nn::write_file_atomically((svg_dir / name).string(), svg);
  std::printf("wrote %s\n", (svg_dir / name).c_str());
}

std::string format(const char* fmt, ...) {
  va_list args, copy;
  va_start(args, fmt);
  va_copy(copy, args);
  std::string text(static_cast<size_t>(std::vsnprintf(nullptr, 0, fmt, copy)), '\0');
  va_end(copy);
  std::vsnprintf(text.data(), text.size() + 1, fmt, args);
  va_end(args);
  return text;
}

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), text;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) text += ',';
    text += digits[i];
  }
  return n < 0 ? "-" + text : text;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB"};
  int unit = 0;
  for (; unit < 3 && bytes >= 1024; ++unit) bytes /= 1024;
  return unit == 0 ? format("%.0f B", bytes) : format("%.1f %s", bytes, units[unit]);
}

}  // namespace mg::study
