// Views (reshape, view, permute, transpose, narrow, slice, expand, squeeze, unsqueeze, flatten)
// and copies (clone, contiguous, to(dtype)): values, strides, shared storage, gradients, errors.
#include "test_util.h"

namespace mg {
namespace {

Tensor iota(const Shape& shape) {  // 0, 1, 2, ... as float64, row-major
  return arange(0.0, static_cast<double>(shape_numel(shape)), 1.0, {.dtype = DType::Float64}).reshape(shape);
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

bool shares_storage(const Tensor& a, const Tensor& b) { return a.impl()->storage == b.impl()->storage; }

// ---- reshape and view

TEST(Reshape, InfersMinusOneAndSharesStorageWhenContiguous) {
  Tensor x = iota({2, 3, 4});
  Tensor r = x.reshape({4, -1});
  EXPECT_EQ(r.shape(), (Shape{4, 6}));
  EXPECT_EQ(r.strides(), (Shape{6, 1}));
  EXPECT_TRUE(shares_storage(r, x));
  EXPECT_EQ(values(r), values(x));
  EXPECT_EQ(x.view({-1}).shape(), Shape{24});
  EXPECT_EQ(x.view({3, 2, -1, 2}).shape(), (Shape{3, 2, 2, 2}));
  EXPECT_EQ(scalar_tensor(1.0).reshape({1, 1}).shape(), (Shape{1, 1}));
  EXPECT_EQ(zeros({0, 4}).reshape({-1, 2}).shape(), (Shape{0, 2}));
  EXPECT_EQ(zeros({0, 4}).reshape({2, 0, 3}).shape(), (Shape{2, 0, 3}));
  // With zero elements, -1 next to a 0 could be anything: an error, as in PyTorch.
  EXPECT_TRUE(test::throws_error([] { zeros({0, 4}).reshape({2, 0, -1}); }, "reshape", "[2, 0, -1]"));
}

TEST(Reshape, ViewOfNonContiguousThrowsButReshapeCopies) {
  Tensor x = iota({3, 4});
  Tensor t = x.transpose(0, 1);  // (4, 3), strides (1, 4)
  EXPECT_TRUE(test::throws_error([&] { t.view({12}); }, "view: cannot view a tensor of shape [4, 3]", "use reshape"));
  Tensor r = t.reshape({12});
  EXPECT_FALSE(shares_storage(r, x));
  EXPECT_EQ(values(r), (std::vector<double>{0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}));
  // Some non-contiguous tensors can still be viewed: splitting a strided dimension.
  Tensor rows = slice(iota({4, 6}), 0, 0, 4, 2);  // (2, 6), strides (12, 1)
  Tensor v = rows.view({2, 2, 3});
  EXPECT_TRUE(shares_storage(v, rows));
  EXPECT_EQ(v.strides(), (Shape{12, 3, 1}));
  EXPECT_EQ(values(v), values(rows));
}

TEST(Reshape, Errors) {
  Tensor x = iota({2, 3});
  EXPECT_TRUE(test::throws_error([&] { x.reshape({4, -1}); }, "reshape: shape [4, -1] is invalid", "[2, 3]"));
  EXPECT_TRUE(test::throws_error([&] { x.reshape({-1, -1}); }, "reshape: only one dimension can be -1"));
  EXPECT_TRUE(test::throws_error([&] { x.view({7}); }, "view: shape [7] is invalid for input of shape [2, 3]"));
  EXPECT_TRUE(test::throws_error([&] { x.reshape({-2, -3}); }, "reshape: invalid size"));
}

TEST(Reshape, Gradcheck) {
  Tensor x = test::random({2, 3, 4}, 1, DType::Float64, true);
  Tensor xt = test::random({4, 3, 2}, 2).permute({2, 1, 0}).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return in[0].reshape({4, -1}); }, {x}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return in[0].reshape({6, 4}); }, {xt}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return in[0].view({3, 8}); }, {x}));
}

// ---- permute and transpose

TEST(Permute, ValuesAndStrides) {
  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_TRUE(shares_storage(p, x));
  std::vector<double> pv = values(p);
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(pv[(k * 2 + i) * 3 + j], (i * 3 + j) * 4 + k);
  Tensor t = x.transpose(-1, 0);
  EXPECT_EQ(t.shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(t.strides(), (Shape{1, 4, 12}));
  EXPECT_EQ(x.permute({-3, -2, -1}).strides(), x.strides());
}

TEST(Permute, GradcheckAndErrors) {
  Tensor x = test::random({2, 3, 4}, 3, DType::Float64, true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return in[0].permute({1, 2, 0}); }, {x}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& in) { return in[0].transpose(0, 2).transpose(1, 2); }, {x}));
  EXPECT_TRUE(test::throws_error([&] { x.permute({0, 1}); }, "permute: 2 dims given", "[2, 3, 4]"));
  EXPECT_TRUE(test::throws_error([&] { x.permute({0, 1, 1}); }, "permute: dimension 1 repeats"));
  EXPECT_TRUE(test::throws_error([&] { x.transpose(0, 3); }, "transpose: dimension 3 is out of range"));
}

// ---- narrow and slice

TEST(Narrow, ValuesOffsetAndSharedStorage) {
  Tensor x = iota({4, 5});
  Tensor n = x.narrow(1, 1, 3);
  EXPECT_EQ(n.shape(), (Shape{4, 3}));
  EXPECT_EQ(n.strides(), (Shape{5, 1}));
  EXPECT_EQ(n.offset(), 1);
  EXPECT_FALSE(n.is_contiguous());
  EXPECT_EQ(values(n.narrow(0, 2, 1)), (std::vector<double>{11, 12, 13}));
  EXPECT_EQ(x.narrow(-2, 4, 0).shape(), (Shape{0, 5}));
  EXPECT_TRUE(test::throws_error([&] { x.narrow(1, 3, 3); }, "narrow: [3, 6) is out of range", "[4, 5]"));
  EXPECT_TRUE(test::throws_error([&] { x.narrow(0, -1, 2); }, "narrow"));
}

TEST(Slice, StepsAndNegativeBounds) {
  Tensor x = iota({10});
  EXPECT_EQ(values(slice(x, 0, 1, 8, 3)), (std::vector<double>{1, 4, 7}));
  EXPECT_EQ(slice(x, 0, 1, 8, 3).strides(), Shape{3});
  EXPECT_EQ(values(slice(x, 0, -4, -1)), (std::vector<double>{6, 7, 8}));
  EXPECT_EQ(values(slice(x, 0, 8, 100, 2)), (std::vector<double>{8}));   // end clamps
  EXPECT_EQ(slice(x, 0, 7, 3).numel(), 0);                               // empty when end < start
  Tensor m = iota({3, 6});
  Tensor s = slice(m, -1, 0, 6, 2);
  EXPECT_EQ(values(s), (std::vector<double>{0, 2, 4, 6, 8, 10, 12, 14, 16}));
  EXPECT_TRUE(test::throws_error([&] { slice(x, 0, 0, 5, 0); }, "slice: step must be positive"));
}

TEST(NarrowSlice, Gradcheck) {
  Tensor x = test::random({4, 6}, 4, DType::Float64, true);
  Tensor xt = test::random({6, 4}, 5).transpose(0, 1).detach().requires_grad_(true);
  for (const Tensor& in : {x, xt}) {
    EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].narrow(1, 2, 3); }, {in}));
    EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return slice(v[0], 1, 1, 6, 2); }, {in}));
    EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return slice(v[0], 0, -3, 4, 2); }, {in}));
  }
}

// ---- writing through views

TEST(Views, WritesThroughAViewAreVisibleInTheBase) {
  Tensor x = zeros({3, 4}, {.dtype = DType::Float64});
  Tensor column = x.narrow(1, 2, 1);
  copy_inplace(column, full({3, 1}, 7.0, {.dtype = DType::Float64}));
  Tensor every_other = slice(x.view({12}), 0, 0, 12, 5);  // elements 0, 5, 10
  copy_inplace(every_other, full({3}, -1.0, {.dtype = DType::Float64}));
  x.narrow(0, 1, 1).data<double>()[0] = 9.0;  // a view's data() starts at its offset: element (1, 0)
  EXPECT_EQ(values(x), (std::vector<double>{-1, 0, 7, 0, 9, -1, 7, 0, 0, 0, -1, 0}));
  EXPECT_EQ(values(column), (std::vector<double>{7, 7, -1}));
}

// ---- expand, squeeze, unsqueeze, flatten

TEST(Expand, StridesAreZeroAndGradientSums) {
  Tensor x = iota({3, 1});
  Tensor e = x.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_TRUE(shares_storage(e, x));
  EXPECT_EQ(values(e.narrow(0, 1, 1).narrow(1, 2, 1)), (std::vector<double>{2, 2, 2, 2}));
  EXPECT_EQ(x.expand({-1, 5}).shape(), (Shape{3, 5}));
  Tensor g = test::random({3, 1}, 6, DType::Float64, true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].expand({2, 3, 4}); }, {g}));
  Tensor gt = test::random({1, 3}, 7).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].expand({3, 2}); }, {gt}));
  EXPECT_TRUE(test::throws_error([&] { x.expand({3, 2, 4}); }, "expand: shape [3, 1] cannot be expanded", "[3, 2, 4]"));
  EXPECT_TRUE(test::throws_error([&] { x.expand({4}); }, "expand: cannot expand shape [3, 1]"));
  EXPECT_TRUE(test::throws_error([&] { x.expand({-1, 3, 1}); }, "expand: invalid size -1"));
}

TEST(SqueezeUnsqueeze, ShapesStridesAndGradients) {
  Tensor x = iota({2, 1, 3});
  EXPECT_EQ(x.squeeze(1).shape(), (Shape{2, 3}));
  EXPECT_EQ(x.squeeze(-2).strides(), (Shape{3, 1}));
  EXPECT_EQ(x.squeeze(0).shape(), (Shape{2, 1, 3}));  // size 2: unchanged
  EXPECT_EQ(x.unsqueeze(0).shape(), (Shape{1, 2, 1, 3}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 1, 3, 1}));
  EXPECT_EQ(x.unsqueeze(3).strides(), (Shape{3, 3, 1, 1}));
  EXPECT_EQ(scalar_tensor(2.0).unsqueeze(0).shape(), Shape{1});
  EXPECT_EQ(values(x.unsqueeze(2)), values(x));
  EXPECT_TRUE(shares_storage(x.unsqueeze(1), x));
  Tensor g = test::random({2, 1, 3}, 8, DType::Float64, true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].squeeze(1).unsqueeze(0); }, {g}));
  Tensor gt = test::random({3, 2}, 9).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].unsqueeze(1).squeeze(1); }, {gt}));
  EXPECT_TRUE(test::throws_error([&] { x.unsqueeze(4); }, "unsqueeze: dimension 4 is out of range"));
  EXPECT_TRUE(test::throws_error([&] { x.squeeze(3); }, "squeeze: dimension 3 is out of range"));
}

TEST(Flatten, RangesOfDims) {
  Tensor x = iota({2, 3, 4, 5});
  EXPECT_EQ(x.flatten().shape(), Shape{120});
  EXPECT_EQ(x.flatten(1).shape(), (Shape{2, 60}));
  EXPECT_EQ(x.flatten(1, 2).shape(), (Shape{2, 12, 5}));
  EXPECT_EQ(x.flatten(-2, -1).shape(), (Shape{2, 3, 20}));
  EXPECT_EQ(scalar_tensor(1.0).flatten().shape(), Shape{1});
  Tensor t = x.transpose(0, 3);  // flattening non-contiguous dims copies
  EXPECT_EQ(values(t.flatten(0, 1)), values(t));
  Tensor g = test::random({4, 3, 2}, 10).permute({2, 1, 0}).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].flatten(1); }, {g}));
  EXPECT_TRUE(test::throws_error([&] { x.flatten(2, 1); }, "flatten: start_dim 2 comes after end_dim 1"));
}

TEST(Views, ZeroDimTensors) {
  Tensor s = scalar_tensor(4.0, {.dtype = DType::Float64});
  EXPECT_EQ(s.transpose(0, -1).shape(), Shape{});
  EXPECT_EQ(s.permute({}).shape(), Shape{});
  EXPECT_EQ(s.squeeze(0).shape(), Shape{});
  EXPECT_EQ(s.expand({2, 2}).strides(), (Shape{0, 0}));
  EXPECT_TRUE(test::throws_error([&] { s.size(0); }, "size: a 0-d tensor has no dimension 0"));
  EXPECT_TRUE(test::throws_error([&] { s.narrow(0, 0, 1); }, "narrow: expected a tensor with at least one dimension"));
  EXPECT_TRUE(test::throws_error([&] { slice(s, 0, 0, 1); }, "slice: expected a tensor with at least one dimension"));
}

// ---- copies

TEST(Copies, CloneIsFreshContiguousReturnsSelfWhenPossible) {
  Tensor x = iota({3, 4});
  Tensor c = x.clone();
  EXPECT_FALSE(shares_storage(c, x));
  EXPECT_EQ(values(c), values(x));
  EXPECT_TRUE(x.contiguous().is_same(x));
  Tensor t = x.transpose(0, 1);
  Tensor tc = t.contiguous();
  EXPECT_TRUE(tc.is_contiguous());
  EXPECT_EQ(tc.strides(), (Shape{3, 1}));
  EXPECT_EQ(values(tc), values(t));
  EXPECT_FALSE(shares_storage(tc, x));
  // Size-1 dims do not break contiguity, whatever their stride.
  EXPECT_TRUE(x.narrow(0, 1, 1).is_contiguous());
  // Empty tensors copy (and cast) to empty tensors.
  Tensor empty_t = zeros({0, 3}).transpose(0, 1);
  EXPECT_EQ(empty_t.clone().shape(), (Shape{3, 0}));
  EXPECT_EQ(empty_t.contiguous().to(DType::Float64).numel(), 0);
}

TEST(Copies, Gradcheck) {
  Tensor xt = test::random({4, 3}, 11).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return v[0].clone(); }, {xt}));
  EXPECT_TRUE(test::passes_gradcheck([](const TensorList& v) { return mul(v[0].contiguous(), v[0]); }, {xt}));
}

TEST(Copies, DtypeCastsConvertValuesAndCarryGradients) {
  Tensor x = tensor({1.5, -2.25, 3.75});
  EXPECT_TRUE(x.to(DType::Float64).is_same(x));  // no-op cast
  Tensor f = x.to(DType::Float32);
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{1.5f, -2.25f, 3.75f}));
  EXPECT_EQ(x.to(DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{1, -2, 3}));  // truncates
  EXPECT_EQ(arange(3).to(DType::Float32).to_vector<float>(), (std::vector<float>{0, 1, 2}));
  EXPECT_EQ(x.transpose(0, 0).to(DType::Float32).shape(), Shape{3});

  // float32 leaf -> float64 computation: the gradient comes back as float32.
  Tensor leaf = tensor({1.f, 2.f, 3.f}).requires_grad_(true);
  Tensor y = mul(leaf.to(DType::Float64), tensor({2.0, 4.0, 8.0}));
  ASSERT_TRUE(y.requires_grad());
  y.backward(ones({3}, {.dtype = DType::Float64}));
  EXPECT_EQ(leaf.grad().dtype(), DType::Float32);
  EXPECT_EQ(leaf.grad().to_vector<float>(), (std::vector<float>{2, 4, 8}));
  // float64 -> float32 -> float64 round trip: the gradient passes through both casts.
  Tensor x64 = tensor({0.5, 0.25}).requires_grad_(true);
  sum(mul(x64.to(DType::Float32), 3.0).to(DType::Float64)).backward();
  EXPECT_EQ(x64.grad().dtype(), DType::Float64);
  EXPECT_EQ(x64.grad().to_vector<double>(), (std::vector<double>{3, 3}));
  // Casting to an integer type cuts the graph.
  EXPECT_FALSE(x64.to(DType::Int64).requires_grad());
}

}  // namespace
}  // namespace mg
