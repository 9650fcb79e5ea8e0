#include "test_util.h"

namespace mg {
namespace {

TEST(Engine, ChainRuleThroughBroadcastAdd) {
  Tensor a = test::random({3, 4}, 1, DType::Float64, true);
  Tensor b = test::random({4}, 2, DType::Float64, true);
  Tensor loss = sum(mul(add(a, b), a));  // sum((a + b) * a)
  loss.backward();
  // d/da = 2a + b, d/db = sum over rows of a
  EXPECT_TRUE(test::all_close(a.grad(), add(mul(a.detach(), 2.0), b.detach())));
  EXPECT_TRUE(test::all_close(b.grad(), sum(a.detach(), {0})));
}

TEST(Engine, GradientsAccumulateAcrossUsesAndCalls) {
  Tensor x = test::random({5}, 3, DType::Float64, true);
  Tensor y = add(x, x);  // one tensor feeding an op twice
  sum(y).backward();
  EXPECT_TRUE(test::all_close(x.grad(), full({5}, 2.0, {.dtype = DType::Float64})));
  sum(mul(x, 3.0)).backward();  // a second graph accumulates into .grad
  EXPECT_TRUE(test::all_close(x.grad(), full({5}, 5.0, {.dtype = DType::Float64})));
}

TEST(Engine, NoGradGuardRecordsNothing) {
  Tensor x = test::random({2, 2}, 4, DType::Float64, true);
  {
    NoGradGuard guard;
    Tensor y = mul(x, x);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  EXPECT_TRUE(mul(x, x).requires_grad());
}

TEST(Engine, DetachCutsTheGraph) {
  Tensor x = test::random({3}, 5, DType::Float64, true);
  Tensor y = mul(x, 2.0).detach();
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(y.is_leaf());
}

TEST(Engine, SecondBackwardThroughFreedGraphThrows) {
  Tensor x = test::random({3}, 6, DType::Float64, true);
  Tensor loss = sum(mul(x, x));
  loss.backward();
  EXPECT_TRUE(test::throws_error([&] { loss.backward(); }, "retain_graph"));
}

TEST(Engine, RetainGraphAllowsTwoBackwards) {
  Tensor x = test::random({3}, 7, DType::Float64, true);
  Tensor loss = sum(mul(x, x));
  loss.backward(Tensor(), /*retain_graph=*/true);
  loss.backward();
  EXPECT_TRUE(test::all_close(x.grad(), mul(x.detach(), 4.0)));
}

TEST(Engine, NonScalarNeedsGradOutput) {
  Tensor x = test::random({3}, 8, DType::Float64, true);
  Tensor y = mul(x, 2.0);
  EXPECT_TRUE(test::throws_error([&] { y.backward(); }, "one-element", "[3]"));
  y.backward(ones({3}, {.dtype = DType::Float64}));
  EXPECT_TRUE(test::all_close(x.grad(), full({3}, 2.0, {.dtype = DType::Float64})));
}

TEST(Engine, BackwardOnTensorWithoutGradThrows) {
  Tensor x = ones({2});
  EXPECT_TRUE(test::throws_error([&] { sum(x).backward(); }, "does not require grad"));
}

TEST(Engine, UnreachedBranchesGetNoGradient) {
  Tensor x = test::random({3}, 9, DType::Float64, true);
  Tensor unused = test::random({3}, 10, DType::Float64, true);
  Tensor pieces = add(x, unused);
  (void)pieces;
  sum(mul(x, x)).backward();
  EXPECT_FALSE(unused.grad().defined());
}

TEST(Engine, GraphIsFreedAfterBackward) {
  // Many steps of a tiny model: live tensors and nodes must not grow.
  Tensor w = test::random({8, 8}, 11, DType::Float32, true);
  auto step = [&] {
    Tensor h = w;
    for (int i = 0; i < 5; ++i) h = mul(add(h, 1.0), 0.5);
    sum(h).backward();
    w.zero_grad();
  };
  step();
  int64_t tensors = live_tensor_impl_count(), nodes = live_node_count();
  for (int i = 0; i < 1000; ++i) step();
  EXPECT_EQ(live_tensor_impl_count(), tensors);
  EXPECT_EQ(live_node_count(), nodes);
}

// gradients() returns what backward() would accumulate, and leaves every .grad as it was.
TEST(Engine, GradientsAreReturnedNotAccumulated) {
  Tensor a = test::random({3, 4}, 1, DType::Float64, true);
  Tensor b = test::random({4}, 2, DType::Float64, true);
  Tensor unused = test::random({2}, 3, DType::Float64, true);
  Tensor seed = full({}, 0.5, {.dtype = DType::Float64});
  TensorList g = gradients({sum(mul(add(a, b), a))}, {seed}, {a, b, unused});
  ASSERT_EQ(g.size(), 3u);
  // d/da = 0.5 (2a + b), d/db = 0.5 sum over rows of a; nothing reaches `unused`
  EXPECT_TRUE(test::all_close(g[0], mul(add(mul(a.detach(), 2.0), b.detach()), 0.5)));
  EXPECT_TRUE(test::all_close(g[1], mul(sum(a.detach(), {0}), 0.5)));
  EXPECT_FALSE(g[2].defined());
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(Engine, GradientsOfANonLeafThrow) {
  Tensor a = test::random({3}, 1, DType::Float64, true);
  Tensor b = mul(a, 2.0);
  EXPECT_TRUE(test::throws_error([&] { gradients({sum(b)}, {Tensor()}, {b}); }, "gradients: input 0",
                                 "must be a leaf tensor that requires grad"));
}

// Two threads run forward and backward at once over graphs that share their leaves (the training
// step's halves): each gets its own gradients, the same as one thread alone.
TEST(Engine, GradientsOnTwoThreadsAtOnce) {
  Tensor w = test::random({64, 64}, 1, DType::Float64, true);
  TensorList x = {test::random({16, 64}, 2), test::random({16, 64}, 3)};
  auto grad_of = [&](int k) {
    Tensor h = matmul(x[k], w);
    return gradients({sum(mul(h, h))}, {Tensor()}, {w})[0];
  };
  const Tensor expected[2] = {grad_of(0), grad_of(1)};
  for (int round = 0; round < 20; ++round) {
    Tensor got[2];
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int k = 0; k < 2; ++k) got[k] = grad_of(k);
    for (int k = 0; k < 2; ++k) ASSERT_TRUE(test::all_close(got[k], expected[k], 0, 0)) << "round " << round;
  }
  EXPECT_FALSE(w.grad().defined());
}

TEST(Gradcheck, CatchesAWrongGradient) {
  // A deliberately wrong backward must fail gradcheck: d/dx of x*x taken as x (not 2x).
  struct WrongSquareBackward : Node {
    Tensor x;
    std::string name() const override { return "WrongSquareBackward"; }
    TensorList backward(const TensorList& g) override { return {mul(g[0], x)}; }
  };
  auto wrong_square = [](const TensorList& in) {
    Tensor out;
    {
      NoGradGuard guard;
      out = mul(in[0], in[0]);
    }
    auto node = std::make_shared<WrongSquareBackward>();
    node->x = in[0].detach();
    connect(node, {in[0]}, {out});
    return out;
  };
  Tensor x = test::random({4}, 12, DType::Float64, true);
  EXPECT_FALSE(gradcheck(wrong_square, {x}).ok);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return mul(in[0], in[0]); }, {x}));
}

}  // namespace
}  // namespace mg
