#include "ops/cpu/transpose_copy.h"

#include "ops/cpu/parallel.h"

namespace mg::cpu {

namespace {
constexpr int64_t kTile = 32;

template <class T>
void copy_tiles(T* dst, const T* src, const Shape& shape, const Shape& src_strides, int64_t p) {
  const int64_t ndim = static_cast<int64_t>(shape.size()), q = ndim - 1;
  const int64_t P = shape[p], Q = shape[q], src_q = src_strides[q];
  const Shape dst_strides = contiguous_strides(shape);
  const int64_t dst_p = dst_strides[p];
  int64_t outer = 1;  // every index of the dims other than p and q
  for (int64_t d = 0; d < ndim; ++d)
    if (d != p && d != q) outer *= shape[d];
  const int64_t p_tiles = (P + kTile - 1) / kTile, q_tiles = (Q + kTile - 1) / kTile;
  parallel_for(0, outer * p_tiles * q_tiles, 16, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      int64_t o = task / (p_tiles * q_tiles), tile = task % (p_tiles * q_tiles);
      int64_t p0 = tile / q_tiles * kTile, q0 = tile % q_tiles * kTile;
      int64_t src_base = 0, dst_base = 0, rest = o;
      for (int64_t d = ndim - 1; d >= 0; --d) {
        if (d == p || d == q) continue;
        int64_t i = rest % shape[d];
        rest /= shape[d];
        src_base += i * src_strides[d];
        dst_base += i * dst_strides[d];
      }
      const int64_t p1 = std::min(P, p0 + kTile), q1 = std::min(Q, q0 + kTile);
      for (int64_t i = p0; i < p1; ++i) {
        T* out = dst + dst_base + i * dst_p;
        const T* in = src + src_base + i;  // stride 1 along p
        for (int64_t j = q0; j < q1; ++j) out[j] = in[j * src_q];
      }
    }
  });
}
}  // namespace

bool transpose_copy_cpu(const Tensor& dst, const Tensor& src) {
  if (dst.dtype() != src.dtype() || dst.shape() != src.shape() || !dst.is_contiguous() || dst.dim() < 2) return false;
  const int64_t q = dst.dim() - 1;
  if (src.strides()[q] == 1 || dst.size(q) < 8) return false;
  int64_t p = -1;
  for (int64_t d = 0; d < q; ++d)
    if (src.strides()[d] == 1 && src.size(d) > 1) p = d;
  if (p < 0 || src.size(p) < 8) return false;
  dispatch_all(dst.dtype(), [&]<class T>() {
    copy_tiles<T>(static_cast<T*>(dst.raw_data()), static_cast<const T*>(src.raw_data()), dst.shape(), src.strides(), p);
  });
  return true;
}

}  // namespace mg::cpu
