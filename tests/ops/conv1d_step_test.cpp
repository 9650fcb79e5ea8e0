#include "test_util.h"

namespace mg {
namespace {

// L recurrent steps from a zero state reproduce causal_conv1d at every position, for K larger
// and smaller than L, with and without bias; the state ends as the last K inputs.
TEST(CausalConv1dStep, StepsEqualTheSequenceConvolution) {
  struct Case {
    int64_t B, C, L, K;
    bool bias;
  };
  for (Case c : {Case{2, 5, 9, 4, true}, Case{1, 3, 2, 4, false}, Case{3, 7, 6, 1, true}}) {
    Tensor x = test::random({c.B, c.C, c.L}, 1 + c.L, DType::Float64);
    Tensor w = test::random({c.C, c.K}, 2 + c.K, DType::Float64);
    Tensor b = c.bias ? test::random({c.C}, 3, DType::Float64) : Tensor();
    Tensor full = causal_conv1d(x, w, b);  // (B, C, L)
    Tensor state = zeros({c.B, c.C, c.K}, {.dtype = DType::Float64});
    for (int64_t t = 0; t < c.L; ++t) {
      Tensor out = causal_conv1d_step(state, x.narrow(2, t, 1).squeeze(2), w, b);
      ASSERT_TRUE(test::all_close(out, full.narrow(2, t, 1).squeeze(2), 1e-12, 1e-12)) << "t = " << t;
    }
    int64_t keep = std::min(c.L, c.K);
    EXPECT_TRUE(test::all_close(state.narrow(2, c.K - keep, keep), x.narrow(2, c.L - keep, keep), 0, 0));
  }
}

TEST(CausalConv1dStep, ErrorsNameTheOpAndShapes) {
  Tensor state = zeros({2, 3, 4});
  EXPECT_TRUE(test::throws_error([&] { causal_conv1d_step(state, zeros({2, 5}), zeros({3, 4})); },
                                 "causal_conv1d_step", "[2, 5]"));
  Tensor strided = zeros({2, 4, 3}).transpose(1, 2);
  EXPECT_TRUE(test::throws_error([&] { causal_conv1d_step(strided, zeros({2, 3}), zeros({3, 4})); }, "contiguous"));
}

}  // namespace
}  // namespace mg
