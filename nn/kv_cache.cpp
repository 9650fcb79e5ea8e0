#include "nn/kv_cache.h"

#include <algorithm>

#include "autograd/grad_mode.h"
#include "ops/binary.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg::nn {

void KVCache::reserve(int64_t capacity) {
  if (capacity <= this->capacity()) return;
  const Shape& s = keys_.shape();
  TensorOptions options{.dtype = keys_.dtype(), .device = keys_.device()};
  Tensor keys = empty({s[0], s[1], capacity, s[3]}, options), values = empty({s[0], s[1], capacity, s[3]}, options);
  if (length_ > 0) {  // keep what is cached
    Tensor dst_k = narrow(keys, 2, 0, length_), dst_v = narrow(values, 2, 0, length_);
    copy_inplace(dst_k, narrow(keys_, 2, 0, length_));
    copy_inplace(dst_v, narrow(values_, 2, 0, length_));
  }
  keys_ = keys;
  values_ = values;
}

std::pair<Tensor, Tensor> KVCache::append(const Tensor& k_new, const Tensor& v_new) {
  NoGradGuard no_grad;
  MG_CHECK(k_new.dim() == 4 && k_new.shape() == v_new.shape() && k_new.dtype() == v_new.dtype(),
           "KVCache.append: expected keys and values of one shape (B, H, T, Dh) and dtype, got ", k_new.shape(), " ",
           k_new.dtype(), " and ", v_new.shape(), " ", v_new.dtype());
  const Shape& s = k_new.shape();
  if (!keys_.defined()) {
    TensorOptions options{.dtype = k_new.dtype(), .device = k_new.device()};
    keys_ = empty({s[0], s[1], 0, s[3]}, options);
    values_ = empty({s[0], s[1], 0, s[3]}, options);
  }
  MG_CHECK(s[0] == keys_.size(0) && s[1] == keys_.size(1) && s[3] == keys_.size(3) &&
               k_new.dtype() == keys_.dtype() && k_new.device() == keys_.device(),
           "KVCache.append: keys ", k_new.shape(), " ", k_new.dtype(), " on ", k_new.device(),
           " do not match the cache's (B, H, Dh) = (", keys_.size(0), ", ", keys_.size(1), ", ", keys_.size(3), ") ",
           keys_.dtype(), " on ", keys_.device());
  const int64_t needed = length_ + s[2];
  if (needed > capacity()) reserve(std::max<int64_t>({needed, 2 * capacity(), 16}));
  Tensor dst_k = narrow(keys_, 2, length_, s[2]), dst_v = narrow(values_, 2, length_, s[2]);
  copy_inplace(dst_k, k_new);
  copy_inplace(dst_v, v_new);
  length_ = needed;
  return {narrow(keys_, 2, 0, length_), narrow(values_, 2, 0, length_)};
}

int64_t KVCache::used_bytes() const {
  if (!keys_.defined()) return 0;
  return 2 * keys_.size(0) * keys_.size(1) * length_ * keys_.size(3) * dtype_size(keys_.dtype());
}

int64_t KVCache::allocated_bytes() const { return keys_.defined() ? keys_.nbytes() + values_.nbytes() : 0; }

}  // namespace mg::nn
