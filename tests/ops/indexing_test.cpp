// embedding, index_select, concat, split, chunk, where, masked_fill: forward against plain
// loops, float64 gradcheck (with non-contiguous inputs), and error messages.
#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

Tensor int64_tensor(const std::vector<int64_t>& values, const Shape& shape) { return from_vector(values, shape); }

// ---- embedding

TEST(Embedding, MatchesReference) {
  Tensor weight = test::random({5, 3}, 1);
  Tensor ids = int64_tensor({4, 0, 2, 2, 1, 4}, {2, 3});
  Tensor out = embedding(weight, ids);
  ASSERT_EQ(out.shape(), (Shape{2, 3, 3}));
  std::vector<double> w = weight.to_vector<double>(), o = out.to_vector<double>();
  std::vector<int64_t> id = ids.to_vector<int64_t>();
  for (size_t t = 0; t < id.size(); ++t)
    for (int e = 0; e < 3; ++e) EXPECT_EQ(o[t * 3 + e], w[id[t] * 3 + e]);
}

TEST(Embedding, ScalarAndEmptyIndices) {
  Tensor weight = test::random({4, 2}, 2);
  Tensor one = embedding(weight, full({}, 3, {.dtype = DType::Int64}));
  EXPECT_EQ(one.shape(), Shape{2});
  EXPECT_TRUE(test::all_close(one, weight.narrow(0, 3, 1).reshape({2})));
  EXPECT_EQ(embedding(weight, zeros({0}, {.dtype = DType::Int64})).shape(), (Shape{0, 2}));
}

TEST(Embedding, GradcheckWithRepeatedIdsAndNonContiguousInputs) {
  Tensor weight = test::random({6, 4}, 3, DType::Float64, true);
  Tensor weight_t = test::random({4, 6}, 4).transpose(0, 1).detach().requires_grad_(true);
  Tensor ids = int64_tensor({5, 1, 5, 0, 1, 5, 3, 3}, {2, 4});
  Tensor ids_t = ids.transpose(0, 1);  // non-contiguous indices
  auto f = [](const TensorList& in) { return embedding(in[0], in[1]); };
  EXPECT_TRUE(test::passes_gradcheck(f, {weight, ids}));
  EXPECT_TRUE(test::passes_gradcheck(f, {weight_t, ids}));
  EXPECT_TRUE(test::passes_gradcheck(f, {weight, ids_t}));
}

// The training-sized case: 4096 tokens, E = 128, float32. Checks the scatter-add against a
// double-precision loop and that the bits do not depend on the thread count.
TEST(Embedding, BackwardMatchesReferenceAndIsDeterministic) {
  const int64_t V = 50, E = 128, N = 4096;
  Generator gen(5);
  Tensor ids = randint(0, V, {8, N / 8}, gen);
  Tensor dout = randn({8, N / 8, E}, gen);
  auto dweight = [&](int threads) {
    set_num_threads(threads);
    Tensor weight = test::random({V, E}, 6, DType::Float32, true);
    embedding(weight, ids).backward(dout);
    return weight.grad().to_vector<float>();
  };
  int threads = get_num_threads();
  std::vector<float> one = dweight(1), many = dweight(std::max(2, threads));
  set_num_threads(threads);
  EXPECT_EQ(one, many);

  std::vector<double> expected(V * E, 0.0), g = dout.to_vector<double>();
  std::vector<int64_t> id = ids.to_vector<int64_t>();
  for (int64_t t = 0; t < N; ++t)
    for (int64_t e = 0; e < E; ++e) expected[id[t] * E + e] += g[t * E + e];
  for (int64_t i = 0; i < V * E; ++i) ASSERT_NEAR(one[i], expected[i], 1e-4 * (1 + std::abs(expected[i]))) << i;
}

TEST(Embedding, Errors) {
  Tensor weight = ones({5, 3});
  EXPECT_TRUE(test::throws_error([&] { embedding(weight, int64_tensor({1, 7, 2}, {3})); },
                                 "embedding: index 7 is out of range for 5 embeddings", "[5, 3]"));
  EXPECT_TRUE(test::throws_error([&] { embedding(weight, int64_tensor({-1}, {1})); }, "embedding: index -1", "5"));
  EXPECT_TRUE(test::throws_error([&] { embedding(weight, ones({2})); }, "embedding: indices must be int64", "float32"));
  EXPECT_TRUE(test::throws_error([&] { embedding(ones({5}), int64_tensor({1}, {1})); }, "embedding", "[5]"));
  EXPECT_TRUE(test::throws_error([&] { embedding(ones({5, 3}, {.dtype = DType::Int64}), int64_tensor({1}, {1})); },
                                 "embedding", "int64"));
}

// ---- index_select

TEST(IndexSelect, MatchesReferenceAlongEachDim) {
  Tensor x = test::random({3, 4, 5}, 7);
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> idx = {2, 0, 2, 1};
  for (int64_t dim : {0, 1, 2, -1}) {
    int64_t d = dim < 0 ? dim + 3 : dim;
    std::vector<int64_t> picks(idx.begin(), idx.begin() + std::min<int64_t>(4, x.size(d)));
    Tensor out = index_select(x, dim, int64_tensor(picks, {static_cast<int64_t>(picks.size())}));
    Shape expected_shape = x.shape();
    expected_shape[d] = static_cast<int64_t>(picks.size());
    ASSERT_EQ(out.shape(), expected_shape);
    std::vector<double> o = out.to_vector<double>();
    int64_t pos = 0;
    for (int64_t i = 0; i < out.size(0); ++i)
      for (int64_t j = 0; j < out.size(1); ++j)
        for (int64_t k = 0; k < out.size(2); ++k) {
          int64_t src[3] = {i, j, k};
          src[d] = picks[src[d]];
          EXPECT_EQ(o[pos++], xv[(src[0] * 4 + src[1]) * 5 + src[2]]) << "dim " << dim;
        }
  }
}

TEST(IndexSelect, WorksOnIntegersAndNonContiguousInputs) {
  Tensor x = int64_tensor({10, 11, 12, 13, 14, 15}, {2, 3});
  EXPECT_EQ(index_select(x, 1, int64_tensor({2, 2, 0}, {3})).to_vector<int64_t>(),
            (std::vector<int64_t>{12, 12, 10, 15, 15, 13}));
  EXPECT_EQ(index_select(x.transpose(0, 1), 0, int64_tensor({1}, {1})).to_vector<int64_t>(),
            (std::vector<int64_t>{11, 14}));
}

TEST(IndexSelect, Gradcheck) {
  Tensor x = test::random({4, 3, 2}, 8, DType::Float64, true);
  Tensor xt = test::random({2, 3, 4}, 9).permute({2, 1, 0}).detach().requires_grad_(true);
  Tensor idx = int64_tensor({3, 1, 3, 0, 3}, {5});
  Tensor idx_strided = slice(int64_tensor({2, 9, 0, 9, 2}, {5}), 0, 0, 5, 2);  // {2, 0, 2}, stride 2
  for (int64_t dim : {0, 2}) {
    Tensor i = dim == 0 ? idx : int64_tensor({1, 1, 0}, {3});
    auto f = [&](const TensorList& in) { return index_select(in[0], dim, in[1]); };
    EXPECT_TRUE(test::passes_gradcheck(f, {x, i})) << dim;
    EXPECT_TRUE(test::passes_gradcheck(f, {xt, i})) << dim;
  }
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& in) { return index_select(in[0], 1, in[1]); },
                                     {xt, idx_strided}));
}

TEST(IndexSelect, Errors) {
  Tensor x = ones({3, 4});
  EXPECT_TRUE(test::throws_error([&] { index_select(x, 1, int64_tensor({0, 4}, {2})); },
                                 "index_select: index 4 is out of range for dimension 1 of size 4", "[3, 4]"));
  EXPECT_TRUE(test::throws_error([&] { index_select(x, 0, int64_tensor({0, 1}, {1, 2})); },
                                 "index_select: index must be a 1-D int64 tensor", "[1, 2]"));
  EXPECT_TRUE(test::throws_error([&] { index_select(x, 0, ones({2})); }, "index_select", "float32"));
  EXPECT_TRUE(test::throws_error([&] { index_select(x, 2, int64_tensor({0}, {1})); },
                                 "index_select: dimension 2 is out of range"));
}

// ---- concat, split, chunk

TEST(Concat, MatchesReferenceAlongEachDim) {
  Tensor a = test::random({2, 3}, 10), b = test::random({2, 3}, 11);
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  Tensor rows = concat({a, b}, 0), cols = concat({a, b}, -1);
  ASSERT_EQ(rows.shape(), (Shape{4, 3}));
  ASSERT_EQ(cols.shape(), (Shape{2, 6}));
  std::vector<double> r = rows.to_vector<double>(), c = cols.to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(r[i * 3 + j], av[i * 3 + j]);
      EXPECT_EQ(r[(i + 2) * 3 + j], bv[i * 3 + j]);
      EXPECT_EQ(c[i * 6 + j], av[i * 3 + j]);
      EXPECT_EQ(c[i * 6 + 3 + j], bv[i * 3 + j]);
    }
}

TEST(Concat, MixedSizesNonContiguousAndIntegers) {
  Tensor a = test::random({2, 1, 4}, 12), b = test::random({4, 3, 2}, 13).transpose(0, 2), c = zeros({2, 0, 4}, {.dtype = DType::Float64});
  Tensor out = concat({a, c, b}, 1);
  ASSERT_EQ(out.shape(), (Shape{2, 4, 4}));
  EXPECT_TRUE(test::all_close(out.narrow(1, 0, 1), a, 0, 0));
  EXPECT_TRUE(test::all_close(out.narrow(1, 1, 3), b, 0, 0));
  Tensor i = concat({int64_tensor({1, 2}, {2}), int64_tensor({3}, {1})}, 0);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Concat, Gradcheck) {
  Tensor a = test::random({2, 3}, 14, DType::Float64, true);
  Tensor b = test::random({3, 2}, 15).transpose(0, 1).detach().requires_grad_(true);  // (2, 3), non-contiguous
  Tensor c = test::random({2, 1}, 16, DType::Float64, true);
  Tensor constant = test::random({2, 2}, 17);  // needs no gradient
  auto f = [](const TensorList& in) { return concat({in[0], in[3], in[1], in[2]}, 1); };
  EXPECT_TRUE(test::passes_gradcheck(f, {a, b, c, constant}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return concat({in[0], in[1], in[0]}, 0); }, {a, b}));
}

TEST(Concat, Errors) {
  EXPECT_TRUE(test::throws_error([] { concat({ones({2, 3}), ones({3, 4})}, 0); }, "concat: tensor 1 has shape [3, 4]",
                                 "[2, 3]"));
  EXPECT_TRUE(test::throws_error([] { concat({ones({2, 3}), ones({2, 3, 1})}, 0); }, "concat", "[2, 3, 1]"));
  EXPECT_TRUE(test::throws_error([] { concat({ones({2}), ones({2}, {.dtype = DType::Float64})}, 0); }, "concat",
                                 "float64"));
  EXPECT_TRUE(test::throws_error([] { concat({}, 0); }, "concat: expected at least one tensor"));
  EXPECT_TRUE(test::throws_error([] { concat({scalar_tensor(1.0)}, 0); }, "concat: cannot concatenate 0-d"));
  EXPECT_TRUE(test::throws_error([] { concat({ones({2})}, 1); }, "concat: dimension 1 is out of range"));
}

TEST(Split, PiecesAreViewsWithTheRightValues) {
  Tensor x = arange(0.0, 24.0, 1.0, {.dtype = DType::Float32}).reshape({4, 6});
  TensorList pieces = split(x, {1, 3, 2}, 1);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].shape(), (Shape{4, 1}));
  EXPECT_EQ(pieces[2].shape(), (Shape{4, 2}));
  EXPECT_EQ(pieces[1].to_vector<float>(),
            (std::vector<float>{1, 2, 3, 7, 8, 9, 13, 14, 15, 19, 20, 21}));
  for (const Tensor& p : pieces) EXPECT_EQ(p.impl()->storage, x.impl()->storage);  // no copy
  EXPECT_TRUE(test::all_close(concat(pieces, 1), x, 0, 0));
}

TEST(Chunk, SizesFollowPyTorch) {
  auto sizes = [](const TensorList& pieces) {
    Shape s;
    for (const Tensor& p : pieces) s.push_back(p.size(0));
    return s;
  };
  EXPECT_EQ(sizes(chunk(zeros({6}), 3, 0)), (Shape{2, 2, 2}));
  EXPECT_EQ(sizes(chunk(zeros({7}), 3, 0)), (Shape{3, 3, 1}));
  EXPECT_EQ(sizes(chunk(zeros({6}), 4, 0)), (Shape{2, 2, 2}));  // fewer pieces than asked, like torch.chunk
  EXPECT_EQ(sizes(chunk(zeros({2}), 5, 0)), (Shape{1, 1}));
  EXPECT_EQ(sizes(chunk(zeros({0}), 2, 0)), (Shape{0, 0}));
  TensorList halves = chunk(arange(8).reshape({2, 4}), 2, -1);
  EXPECT_EQ(halves[1].to_vector<int64_t>(), (std::vector<int64_t>{2, 3, 6, 7}));
}

TEST(SplitChunk, GradientsFlowThroughEveryPiece) {
  Tensor x = test::random({5, 4}, 18).transpose(0, 1).detach().requires_grad_(true);  // (4, 5)
  auto f_split = [](const TensorList& in) {
    TensorList p = split(in[0], {2, 0, 3}, 1);
    return concat({mul(p[2], 2.0), p[1], p[0]}, 1);  // reordered and scaled: a non-trivial Jacobian
  };
  auto f_chunk = [](const TensorList& in) {
    TensorList p = chunk(in[0], 3, 0);  // sizes 2, 2
    return mul(p[0], p[1]);
  };
  auto f_one_piece = [](const TensorList& in) { return chunk(in[0], 2, 1)[1]; };  // the other gets no gradient
  EXPECT_TRUE(test::passes_gradcheck(f_split, {x}));
  EXPECT_TRUE(test::passes_gradcheck(f_chunk, {x}));
  EXPECT_TRUE(test::passes_gradcheck(f_one_piece, {x}));
  // All pieces hang off one node, as its outputs 0, 1, 2.
  TensorList p = split(x, {1, 1, 2}, 0);
  EXPECT_EQ(p[0].grad_fn(), p[2].grad_fn());
  EXPECT_EQ(p[2].output_nr(), 2u);
  EXPECT_EQ(p[0].grad_fn()->name(), "SplitBackward");
}

TEST(SplitChunk, Errors) {
  Tensor x = ones({3, 4});
  EXPECT_TRUE(test::throws_error([&] { split(x, {1, 2}, 1); }, "split: sizes [1, 2] add up to 3", "[3, 4]"));
  EXPECT_TRUE(test::throws_error([&] { split(x, {5, -1}, 1); }, "split: negative size"));
  EXPECT_TRUE(test::throws_error([&] { split(x, {3}, 2); }, "split: dimension 2 is out of range"));
  EXPECT_TRUE(test::throws_error([&] { chunk(x, 0, 0); }, "chunk: chunks must be positive"));
  EXPECT_TRUE(test::throws_error([&] { chunk(scalar_tensor(1.0), 2, 0); }, "chunk: cannot chunk a 0-d"));
}

// ---- where and masked_fill

TEST(Where, MatchesReferenceWithBroadcastingOfAllThree) {
  Tensor cond_f = tensor({1.f, 0.f, -2.f}).reshape({3, 1});             // (3, 1), float: non-zero is true
  Tensor cond_i = int64_tensor({0, 5, 0, 1}, {4});                       // (4,), int64
  Tensor a = test::random({1, 4}, 19), b = test::random({3, 1}, 20);
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>();
  std::vector<float> cf = cond_f.to_vector<float>();
  std::vector<int64_t> ci = cond_i.to_vector<int64_t>();
  Tensor out_f = where(cond_f, a, b), out_i = where(cond_i, a, b);
  ASSERT_EQ(out_f.shape(), (Shape{3, 4}));
  ASSERT_EQ(out_i.shape(), (Shape{3, 4}));
  std::vector<double> of = out_f.to_vector<double>(), oi = out_i.to_vector<double>();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 4; ++j) {
      EXPECT_EQ(of[i * 4 + j], cf[i] != 0 ? av[j] : bv[i]);
      EXPECT_EQ(oi[i * 4 + j], ci[j] != 0 ? av[j] : bv[i]);
    }
}

TEST(Where, NonContiguousInputsAndIntegerValues) {
  Tensor cond = int64_tensor({1, 0, 0, 1, 1, 0}, {3, 2}).transpose(0, 1);  // (2, 3) strided
  Tensor a = arange(6).reshape({3, 2}).transpose(0, 1);
  Tensor b = full({}, -1, {.dtype = DType::Int64});
  EXPECT_EQ(where(cond, a, b).to_vector<int64_t>(), (std::vector<int64_t>{0, -1, 4, -1, 3, -1}));
}

TEST(Where, Gradcheck) {
  Generator gen(21);
  Tensor cond = randint(0, 2, {3, 4}, gen);
  Tensor a = test::random({3, 4}, 22, DType::Float64, true);
  Tensor a_row = test::random({4}, 23, DType::Float64, true);
  Tensor b_t = test::random({4, 3}, 24).transpose(0, 1).detach().requires_grad_(true);
  Tensor b_col = test::random({3, 1}, 25, DType::Float64, true);
  auto f = [](const TensorList& in) { return where(in[0], in[1], in[2]); };
  EXPECT_TRUE(test::passes_gradcheck(f, {cond, a, b_t}));
  EXPECT_TRUE(test::passes_gradcheck(f, {cond, a_row, b_col}));
  EXPECT_TRUE(test::passes_gradcheck(f, {cond.narrow(0, 0, 1), b_col, a_row}));  // cond broadcasts too
  // The gradient is split exactly by the condition.
  Tensor x = ones({3, 4}, {.dtype = DType::Float64, .requires_grad = true});
  Tensor y = ones({3, 4}, {.dtype = DType::Float64, .requires_grad = true});
  where(cond, x, y).backward(ones({3, 4}, {.dtype = DType::Float64}));
  EXPECT_TRUE(test::all_close(x.grad(), cond.to(DType::Float64)));
  EXPECT_TRUE(test::all_close(add(x.grad(), y.grad()), ones({3, 4}, {.dtype = DType::Float64})));
}

TEST(Where, Errors) {
  EXPECT_TRUE(test::throws_error([] { where(ones({2}), ones({3}), ones({3})); }, "where: shapes [2] and [3]"));
  EXPECT_TRUE(test::throws_error([] { where(ones({3}), ones({3}), ones({3}, {.dtype = DType::Float64})); }, "where",
                                 "float64"));
}

TEST(MaskedFill, ForwardAndGradient) {
  Tensor x = test::random({2, 3}, 26, DType::Float64, true);
  Tensor mask = int64_tensor({1, 0, 1}, {3});  // broadcasts over rows
  Tensor out = masked_fill(x, mask, -5.0);
  std::vector<double> xv = x.to_vector<double>(), o = out.to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(o[i * 3 + j], j != 1 ? -5.0 : xv[i * 3 + j]);
  Tensor xt = test::random({3, 2}, 27).transpose(0, 1).detach().requires_grad_(true);
  auto f = [&](const TensorList& in) { return masked_fill(in[0], mask, 2.0); };
  EXPECT_TRUE(test::passes_gradcheck(f, {x}));
  EXPECT_TRUE(test::passes_gradcheck(f, {xt}));
  out.backward(ones({2, 3}, {.dtype = DType::Float64}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 1, 0, 0, 1, 0}));
}

TEST(MaskedFill, Errors) {
  EXPECT_TRUE(test::throws_error([] { masked_fill(ones({2, 3}), ones({2, 1, 3}), 0.0); },
                                 "masked_fill: mask of shape [2, 1, 3] does not broadcast", "[2, 3]"));
  EXPECT_TRUE(test::throws_error([] { masked_fill(ones({2, 3}), ones({4}), 0.0); }, "masked_fill", "[4]"));
}

}  // namespace
}  // namespace mg
