#pragma once
// CPU parallelism: one OpenMP pool for the whole process (Eigen uses the same one), sized by
// set_num_threads() or the OMP_NUM_THREADS convention. Work is split into fixed chunks of
// `grain` items, so which items are summed together never depends on the thread count.
#include <algorithm>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mg {

void set_num_threads(int threads);
int get_num_threads();

// Calls fn(chunk_begin, chunk_end) for consecutive chunks [begin + k*grain, ...) covering
// [begin, end). Chunks run in parallel unless there is only one or we are already inside a
// parallel region.
template <class Fn>
void parallel_for(int64_t begin, int64_t end, int64_t grain, Fn&& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = (end - begin + grain - 1) / grain;
#ifdef _OPENMP
  if (chunks > 1 && !omp_in_parallel() && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) fn(begin + c * grain, std::min(end, begin + (c + 1) * grain));
    return;
  }
#endif
  for (int64_t c = 0; c < chunks; ++c) fn(begin + c * grain, std::min(end, begin + (c + 1) * grain));
}

}  // namespace mg
