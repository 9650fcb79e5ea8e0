// The selective scan at the sizes where its CPU kernels split work, checked for VALUES (not only
// for equality across thread counts): the backward cuts each group's channels into slices of 64
// and merges their dBm/dCm partial sums, walks time in chunks of 64 from checkpoints, and the
// forward splits (b, d) rows between threads. The independent reference is the scan written
// with basic ops, one time step at a time, in float64, differentiated by the autograd engine.
#include "ops/selective_scan.h"

#include "test_util.h"

namespace mg {
namespace {

struct Inputs {
  Tensor u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0;
  bool exact = false;
  TensorList list() const { return {u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0}; }
  SelectiveScanArgs args() const {
    return {.D_skip = D_skip, .z = z, .delta_bias = delta_bias, .h0 = h0, .delta_softplus = true, .exact_zoh_b = exact};
  }
};

// Bm or Cm at time t for every channel: (B, N, L) or (B, G, N, L) -> (B, D, N).
Tensor per_channel(const Tensor& M, int64_t t, int64_t D) {
  Tensor m = squeeze(narrow(M, -1, t, 1), -1);  // (B, N) or (B, G, N)
  const int64_t B = M.size(0), N = M.size(-2);
  if (M.dim() == 3) return expand(unsqueeze(m, 1), {B, D, N});
  const int64_t G = M.size(1);
  return reshape(expand(unsqueeze(m, 2), {B, G, D / G, N}), {B, D, N});
}

// The scan of ops/selective_scan.h written with basic ops: delta' = softplus(delta + bias),
// h_t = exp(delta'_t A) h_{t-1} + dB_t u_t, y_t = <Cm_t, h_t> + D u_t, y *= silu(z).
SelectiveScanResult composed_scan(const Inputs& in) {
  const int64_t D = in.u.size(1), L = in.u.size(2);
  Tensor dt = softplus(in.delta + reshape(in.delta_bias, {1, D, 1}));  // (B, D, L)
  Tensor h = in.h0;                                                      // (B, D, N)
  TensorList ys;
  for (int64_t t = 0; t < L; ++t) {
    Tensor dt_t = narrow(dt, 2, t, 1), u_t = narrow(in.u, 2, t, 1);  // (B, D, 1)
    Tensor dA = exp(dt_t * in.A);                                      // (B, D, N)
    Tensor dB = in.exact ? (dA - 1.0) / in.A * per_channel(in.Bm, t, D) : dt_t * per_channel(in.Bm, t, D);
    h = dA * h + dB * u_t;
    ys.push_back(sum(h * per_channel(in.Cm, t, D), {2}, true) + reshape(in.D_skip, {1, D, 1}) * u_t);
  }
  return {concat(ys, 2) * silu(in.z), h};
}

// Inputs as the mixer passes them: Bm, Cm (and z) strided views of a wider projection output,
// grouped Bm/Cm when G > 1. A random but stable problem (A < 0, delta' ~ 0.05..1).
Inputs make_inputs(int64_t B, int64_t D, int64_t G, int64_t N, int64_t L, bool exact, DType dtype) {
  uint64_t seed = 1000;
  auto r = [&](const Shape& shape, double low, double high) {
    return test::random(shape, seed++, DType::Float64, false, low, high).to(dtype);
  };
  Inputs in;
  in.u = r({B, D, L}, -1, 1);
  in.delta = r({B, D, L}, -3, 0);
  in.A = r({D, N}, -2, -0.2);
  // x_dbl (B, L, G, 2N + 3): Bm and Cm are (B, G, N, L) views into it, as x_proj's split is.
  Tensor x_dbl = r({B, L, G, 2 * N + 3}, -1, 1);
  in.Bm = permute(narrow(x_dbl, 3, 1, N), {0, 2, 3, 1});
  in.Cm = permute(narrow(x_dbl, 3, 1 + N, N), {0, 2, 3, 1});
  if (G == 1) in.Bm = squeeze(in.Bm, 1), in.Cm = squeeze(in.Cm, 1);
  in.D_skip = r({D}, -1, 1);
  in.z = transpose(r({B, L, D}, -2, 2), 1, 2);  // (B, D, L), strided as in_proj's split
  in.delta_bias = r({D}, 0, 0.3);
  in.h0 = r({B, D, N}, -1, 1);
  in.exact = exact;
  return in;
}

Inputs as_leaves(const Inputs& in) {
  Inputs out = in;
  for (Tensor* t : {&out.u, &out.delta, &out.A, &out.Bm, &out.Cm, &out.D_skip, &out.z, &out.delta_bias, &out.h0})
    *t = t->detach().requires_grad_(true);
  return out;
}

// y, the last state and the gradients of sum(v y) + sum(w h_last) for every input.
TensorList outputs_and_gradients(const Inputs& in, bool composed) {
  Inputs leaves = as_leaves(in);
  SelectiveScanResult r = composed ? composed_scan(leaves)
                                   : selective_scan(leaves.u, leaves.delta, leaves.A, leaves.Bm, leaves.Cm, leaves.args());
  Tensor v = test::random(r.y.shape(), 7, r.y.dtype()), w = test::random(r.last_state.shape(), 8, r.y.dtype());
  (sum(r.y * v) + sum(r.last_state * w)).backward();
  TensorList out{r.y, r.last_state};
  for (const Tensor& t : leaves.list()) out.push_back(t.grad());
  return out;
}

const char* const kNames[] = {"y", "last_state", "du", "ddelta", "dA", "dBm", "dCm", "dD", "dz", "ddelta_bias", "dh0"};

void expect_matches_composed(int64_t B, int64_t D, int64_t G, int64_t N, int64_t L, bool exact) {
  const TensorList reference = outputs_and_gradients(make_inputs(B, D, G, N, L, exact, DType::Float64), true);
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const TensorList fast = outputs_and_gradients(make_inputs(B, D, G, N, L, exact, dtype), false);
    // float64: only the order of the sums differs; float32: the kernel's own rounding.
    const bool f64 = dtype == DType::Float64;
    for (size_t i = 0; i < fast.size(); ++i)
      EXPECT_TRUE(test::all_close(fast[i], reference[i], f64 ? 1e-11 : 2e-4, f64 ? 1e-9 : 2e-3))
          << kNames[i] << " " << dtype << " (B " << B << ", D " << D << ", G " << G << ", N " << N << ", L " << L
          << (exact ? ", exact hold)" : ")");
  }
}

// 128 channels per group: two slices of 64 whose dBm/dCm partial sums are merged; B 2, L 130:
// chunks of 64, 64 and 2; grouped Bm/Cm; N 16 (one vector of lanes).
TEST(SelectiveScanBlocks, TwoChannelSlicesPerGroupAndChunkBoundaries) { expect_matches_composed(2, 256, 2, 16, 130, false); }

// 200 channels in one group: three slices of 67, 67 and 66; N 17 (a padded lane vector); L 65:
// one full chunk and a one-step chunk; the exact zero-order hold.
TEST(SelectiveScanBlocks, UnevenSlicesPaddedStateAndExactHold) { expect_matches_composed(3, 200, 1, 17, 65, true); }

}  // namespace
}  // namespace mg
