#include "ops/cpu/index_select.h"

#include <cstring>
#include <vector>

#include "ops/cpu/parallel.h"

namespace mg {

namespace {
constexpr int64_t kGrainElements = 1 << 15;  // elements moved per parallel chunk, roughly
}

int64_t first_index_out_of_range(const int64_t* index, int64_t n, int64_t rows) {
  for (int64_t i = 0; i < n; ++i)
    if (index[i] < 0 || index[i] >= rows) return i;
  return -1;
}

void index_select_forward_cpu(void* out, const void* x, const int64_t* index, int64_t outer, int64_t rows,
                              int64_t n, int64_t inner, int64_t element_size) {
  const int64_t row_bytes = inner * element_size;
  const char* src = static_cast<const char*>(x);
  char* dst = static_cast<char*>(out);
  int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(inner, 1));
  parallel_for(0, outer * n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t o = item / n, i = item % n;
      std::memcpy(dst + item * row_bytes, src + (o * rows + index[i]) * row_bytes, row_bytes);
    }
  });
}

template <class T>
void index_select_backward_cpu(T* dx, const T* dout, const int64_t* index, int64_t outer, int64_t rows, int64_t n,
                               int64_t inner) {
  // Counting sort of positions by destination row: positions of row r are
  // order[first[r] .. first[r + 1]), in increasing i (a stable sort keeps the summation order).
  std::vector<int64_t> first(rows + 1, 0), order(n);
  for (int64_t i = 0; i < n; ++i) ++first[index[i] + 1];
  for (int64_t r = 0; r < rows; ++r) first[r + 1] += first[r];
  std::vector<int64_t> cursor(first.begin(), first.end() - 1);
  for (int64_t i = 0; i < n; ++i) order[cursor[index[i]]++] = i;

  // One work item per (o, r) destination row; chunks sized for ~kGrainElements additions on average.
  int64_t items = outer * rows;
  int64_t work = std::max<int64_t>(1, outer * n * inner);
  int64_t grain = std::max<int64_t>(1, items * kGrainElements / work);
  parallel_for(0, items, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t o = item / rows, r = item % rows;
      T* d = dx + item * inner;
      for (int64_t k = first[r]; k < first[r + 1]; ++k) {
        const T* g = dout + (o * n + order[k]) * inner;
        for (int64_t j = 0; j < inner; ++j) d[j] += g[j];
      }
    }
  });
}

template void index_select_backward_cpu<float>(float*, const float*, const int64_t*, int64_t, int64_t, int64_t,
                                               int64_t);
template void index_select_backward_cpu<double>(double*, const double*, const int64_t*, int64_t, int64_t, int64_t,
                                                int64_t);

}  // namespace mg
