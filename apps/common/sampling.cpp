#include "apps/common/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/error.h"

namespace mg::apps {

void validate(const SamplingOptions& o) {
  MG_CHECK(o.temperature >= 0 && std::isfinite(o.temperature), "sampling: temperature must be >= 0, got ",
           o.temperature);
  MG_CHECK(o.top_k >= 0, "sampling: top_k must be >= 0 (0 = off), got ", o.top_k);
  MG_CHECK(o.top_p > 0 && o.top_p <= 1, "sampling: top_p must be in (0, 1], got ", o.top_p);
}

int64_t sample_token(const std::vector<float>& logits, const SamplingOptions& o, Generator& gen) {
  MG_CHECK(!logits.empty(), "sampling: empty logits");
  int64_t n = static_cast<int64_t>(logits.size());
  if (o.temperature == 0) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  // Candidates sorted by logit, most likely first (ties by id, so the order is deterministic).
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  int64_t keep = o.top_k > 0 ? std::min(o.top_k, n) : n;
  // Softmax at the temperature over the kept candidates, in double.
  std::vector<double> p(keep);
  double top = logits[order[0]] / o.temperature, total = 0;
  for (int64_t i = 0; i < keep; ++i) total += p[i] = std::exp(logits[order[i]] / o.temperature - top);
  for (double& v : p) v /= total;
  if (o.top_p < 1) {  // nucleus: the shortest prefix whose mass reaches top_p
    double mass = 0;
    int64_t cut = 0;
    while (cut < keep && mass < o.top_p) mass += p[cut++];
    keep = std::max<int64_t>(cut, 1);
    p.resize(keep);
    for (double& v : p) v /= mass;
  }
  double u = gen.next_double(), cumulative = 0;
  for (int64_t i = 0; i < keep; ++i) {
    cumulative += p[i];
    if (u < cumulative) return order[i];
  }
  return order[keep - 1];  // rounding left u just above the total
}

}  // namespace mg::apps
