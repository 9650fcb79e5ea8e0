#include "ops/cpu/loops.h"

namespace mg::cpu {

Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape strides(shape.size(), 0);
  int64_t shift = static_cast<int64_t>(shape.size()) - t.dim();
  MG_ASSERT(shift >= 0, "tensor ", t.shape(), " has more dimensions than the loop shape ", shape);
  for (int64_t d = 0; d < t.dim(); ++d) {
    MG_ASSERT(t.size(d) == shape[d + shift] || t.size(d) == 1, t.shape(), " does not broadcast to ", shape);
    strides[d + shift] = t.size(d) == 1 ? 0 : t.strides()[d];
  }
  return strides;
}

}  // namespace mg::cpu
