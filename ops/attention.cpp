// scaled_dot_product_attention: the fused op (forward, backward node, device dispatch) and the
// composed reference. The kernels and their math are in ops/cpu/attention.cpp.
//   forward:  out = softmax(scale q k^T + causal mask) v, by blocks with an online softmax; saves
//             q, k, v, out and lse = the log-sum-exp of each query's scores (B, H, Lq)
//   backward: recomputes p = exp(scale q k^T - lse) block by block;
//             dv = p^T dout,  ds = p * (dout v^T - rowsum(dout * out)),  dq = scale ds k,  dk = scale ds^T q
#include "ops/attention.h"

#include <cmath>
#include <limits>
#include <type_traits>

#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/attention.h"
#include "ops/indexing.h"
#include "ops/matmul.h"
#include "ops/softmax.h"
#include "ops/unary.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

// The fused kernel runs on the CPU; the backward node is only made there.
void check_device(const Tensor& t) {
  MG_ASSERT(t.device().is_cpu(), kOp, ": the fused kernel runs on the CPU, got ", t.device());
}

cpu::AttentionSizes check_inputs(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const AttentionOptions& options) {
  check_floating_inputs(op, {q, k, v});
  MG_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
           ": expected q (B, H, Lq, Dh), k (B, H, Lk, Dh) and v (B, H, Lk, Dh), got ", q.shape(), ", ", k.shape(),
           " and ", v.shape());
  MG_CHECK(k.shape() == v.shape() && q.size(0) == k.size(0) && q.size(1) == k.size(1) && q.size(3) == k.size(3), op,
           ": q ", q.shape(), ", k ", k.shape(), " and v ", v.shape(),
           " do not match (expected q (B, H, Lq, Dh), k and v (B, H, Lk, Dh))");
  MG_CHECK(k.size(2) >= 1 && k.size(3) >= 1, op, ": expected at least one key and a head size of at least 1, got k ",
           k.shape());
  MG_CHECK(!options.causal || q.size(2) <= k.size(2), op, ": causal attention with more queries (", q.size(2),
           ") than keys (", k.size(2), ") leaves the first queries nothing to attend to (q ", q.shape(), ", k ",
           k.shape(), ")");
  MG_CHECK(options.scale >= 0 && std::isfinite(options.scale), op, ": scale must be finite and >= 0 (0 = 1/sqrt(Dh)), got ",
           options.scale);
  cpu::AttentionSizes sizes;
  sizes.B = q.size(0), sizes.H = q.size(1), sizes.Lq = q.size(2), sizes.Lk = k.size(2), sizes.Dh = q.size(3);
  sizes.scale = options.scale > 0 ? options.scale : 1.0 / std::sqrt(static_cast<double>(sizes.Dh));
  sizes.causal = options.causal;
  return sizes;
}

// t itself when the kernel can read it in place (unit stride along Dh), else a contiguous copy.
Tensor readable(const Tensor& t) { return t.size(3) == 1 || t.strides()[3] == 1 ? t : contiguous(t); }

template <class T>
cpu::HeadsView<T> heads_view(const Tensor& t) {
  return {t.data<std::remove_const_t<T>>(), t.strides()[0], t.strides()[1], t.strides()[2]};
}

// A fresh (B, H, L, Dh) tensor laid out as (B, L, H, Dh) in memory (see the header).
Tensor empty_heads(int64_t B, int64_t H, int64_t L, int64_t Dh, DType dtype) {
  return permute(empty({B, L, H, Dh}, {.dtype = dtype}), {0, 2, 1, 3});
}

struct AttentionBackward : Node {
  Tensor q, k, v, out, lse;  // saved: the forward's inputs (as read), its output and lse (B, H, Lq)
  cpu::AttentionSizes sizes;

  std::string name() const override { return "ScaledDotProductAttentionBackward"; }
  void release_saved() override { q = k = v = out = lse = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    check_device(grads[0]);
    Tensor dout = readable(grads[0]);
    const auto& s = sizes;
    Tensor dq = empty_heads(s.B, s.H, s.Lq, s.Dh, q.dtype());
    Tensor dk = empty_heads(s.B, s.H, s.Lk, s.Dh, q.dtype()), dv = empty_heads(s.B, s.H, s.Lk, s.Dh, q.dtype());
    dispatch_floating(q.dtype(), kOp, [&]<class T>() {
      cpu::attention_backward_cpu<T>(heads_view<T>(dq), heads_view<T>(dk), heads_view<T>(dv),
                                     heads_view<const T>(dout), heads_view<const T>(q), heads_view<const T>(k),
                                     heads_view<const T>(v), heads_view<const T>(out), lse.data<T>(), s);
    });
    return {dq, dk, dv};
  }
};

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                   const AttentionOptions& options) {
  cpu::AttentionSizes sizes = check_inputs(kOp, q_in, k_in, v_in, options);
  // On a GPU: the composed ops (their kernels are all there), which form the (B, H, Lq, Lk) scores.
  if (q_in.device().is_cuda()) return scaled_dot_product_attention_reference(q_in, k_in, v_in, options);
  check_device(q_in);
  Tensor q = readable(q_in.detach()), k = readable(k_in.detach()), v = readable(v_in.detach());
  Tensor out = empty_heads(sizes.B, sizes.H, sizes.Lq, sizes.Dh, q.dtype());
  Tensor lse = empty({sizes.B, sizes.H, sizes.Lq}, {.dtype = q.dtype()});
  dispatch_floating(q.dtype(), kOp, [&]<class T>() {
    cpu::attention_forward_cpu<T>(heads_view<T>(out), lse.data<T>(), heads_view<const T>(q), heads_view<const T>(k),
                                  heads_view<const T>(v), sizes);
  });
  if (needs_grad({q_in, k_in, v_in})) {
    auto node = std::make_shared<AttentionBackward>();
    node->q = q;
    node->k = k;
    node->v = v;
    node->out = out.detach();
    node->lse = lse;
    node->sizes = sizes;
    connect(node, {q_in, k_in, v_in}, {out});
  }
  return out;
}

Tensor scaled_dot_product_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const AttentionOptions& options) {
  cpu::AttentionSizes sizes = check_inputs("scaled_dot_product_attention_reference", q, k, v, options);
  Tensor scores = mul(matmul(q, transpose(k, -1, -2)), sizes.scale);  // (B, H, Lq, Lk)
  // One query (a generation step against a KV cache) sits at the last position and sees every
  // key: it needs no mask.
  if (options.causal && sizes.Lq > 1) {
    // mask (Lq, Lk): non-zero where key j comes after query i's position i + (Lk - Lq), that is
    // where relu(j - (i + Lk - Lq)) > 0. Made on q's device from two ranges: a table filled on
    // the host would be Lq Lk values to write and copy up (512 MiB at Lq = Lk = 8192, per call).
    // The positions are exact in float32 below 2^24.
    const TensorOptions positions{.dtype = q.dtype(), .device = q.device()};
    Tensor keys = arange(0.0, static_cast<double>(sizes.Lk), 1.0, positions).view({1, sizes.Lk});
    Tensor queries = arange(static_cast<double>(sizes.Lk - sizes.Lq), static_cast<double>(sizes.Lk), 1.0, positions)
                         .view({sizes.Lq, 1});
    scores = masked_fill(scores, relu(sub(keys, queries)), -std::numeric_limits<double>::infinity());
  }
  return matmul(softmax(scores, -1), v);  // (B, H, Lq, Dh)
}

}  // namespace mg
