#pragma once
// The training text: where to find it, how to split it, and how to draw batches from it.
#include <string>
#include <vector>

#include "apps/common/char_tokenizer.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace mg::apps {

// Finds tinyshakespeare.txt: `explicit_path` if given (it must exist); else $MG_DATA_DIR/ when
// that is set (and only there); else data/ under the working directory, then the copy committed
// in the source checkout's data/. If none exists, downloads it (curl or wget) from its well-known
// public address, or from $MG_DATA_URL, into $MG_DATA_DIR or data/, and keeps it only if its size
// and SHA-256 are those of the known file. Throws mg::Error saying where it looked and why the
// download failed.
std::string find_tinyshakespeare(const std::string& explicit_path);
std::string read_text_file(const std::string& path);  // throws naming the file

// Token ids split as nanoGPT does: the first 90% train, the last 10% validation.
struct TextSplits {
  std::vector<int64_t> train, val;
};
TextSplits split_90_10(const std::vector<int64_t>& ids);

// A batch of windows: inputs (B, L) and targets (B, L) = inputs shifted by one token.
struct Batch {
  Tensor inputs, targets;
};
// `batch` windows starting at uniform random offsets drawn from `gen`.
Batch random_batch(const std::vector<int64_t>& ids, int64_t batch, int64_t seq_len, Generator& gen);
// Window k of a fixed, evenly spaced tiling (for a deterministic validation loss).
Batch fixed_batch(const std::vector<int64_t>& ids, int64_t batch, int64_t seq_len, int64_t index, int64_t count);

}  // namespace mg::apps
