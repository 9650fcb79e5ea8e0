// The CUDA slice against the CPU reference: transfers, factories, the elementwise kernels
// (add/sub/mul/div with broadcasting), sum, matmul through cuBLAS, forward and backward.
// Every GPU test skips with a printed reason on a machine without a GPU; the first test runs
// everywhere (it checks the error a missing GPU or a CPU-only build gives).
#include "test_util.h"

#ifdef MG_WITH_CUDA
#include "cuda/kernels.h"
#endif

namespace mg {
namespace {

const Device kGpu = Device::cuda(0);
const DType kDtypes[] = {DType::Float32, DType::Float64, DType::Int64};
const DType kFloatDtypes[] = {DType::Float32, DType::Float64};

// Exactly equal values, shapes and dtypes (after moving both to the CPU).
::testing::AssertionResult same_values(const Tensor& actual, const Tensor& expected) {
  if (actual.dtype() != expected.dtype())
    return ::testing::AssertionFailure() << "dtypes differ: " << actual.dtype() << " vs " << expected.dtype();
  return test::all_close(actual, expected, 0.0, 0.0);
}

Tensor random_of(const Shape& shape, uint64_t seed, DType dtype) {
  Generator gen(seed);
  if (dtype == DType::Int64) return randint(-1000, 1000, shape, gen);
  return test::random(shape, seed, dtype);
}

// ---- runs on every machine and build

TEST(CudaUnavailable, AskingForAMissingGpuThrowsAnErrorNamingCuda) {
  // Without a GPU (or without CUDA in the build) cuda:0 is missing; with GPUs, the one past the last.
  Device missing = Device::cuda(cuda_device_count());
  EXPECT_TRUE(test::throws_error([&] { zeros({2, 3}, {.device = missing}); }, "cuda"));
  EXPECT_TRUE(test::throws_error([&] { ones({2}, {.device = missing}); }, "cuda", missing.str()));
  EXPECT_TRUE(test::throws_error([&] { test::random({4}, 1).to(missing); }, "cuda"));
#ifndef MG_WITH_CUDA
  EXPECT_EQ(cuda_device_count(), 0);
  EXPECT_FALSE(cuda_is_available());
  EXPECT_TRUE(test::throws_error([&] { empty({1}, {.device = kGpu}); }, "cuda", "built without CUDA"));
#endif
}

// ---- transfers and factories

TEST(Cuda, ToCudaAndBackRoundTripsEveryDtype) {
  MG_SKIP_WITHOUT_CUDA();
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    Tensor x = random_of({5, 7, 3}, 1, dtype);
    Tensor on_gpu = x.to(kGpu);
    EXPECT_EQ(on_gpu.device(), kGpu);
    EXPECT_EQ(on_gpu.shape(), x.shape());
    EXPECT_TRUE(same_values(on_gpu.to(Device::cpu()), x));
    EXPECT_TRUE(same_values(on_gpu, x));  // to_vector reads a GPU tensor directly
    // Non-contiguous sources, on either side of the transfer.
    for (const Tensor& view : {x.transpose(0, 2), slice(x, 1, 1, 7, 2), x.narrow(2, 1, 2)}) {
      EXPECT_TRUE(same_values(view.to(kGpu).to(Device::cpu()), view));
    }
    EXPECT_TRUE(same_values(on_gpu.transpose(0, 2).to(Device::cpu()), x.transpose(0, 2)));
    EXPECT_TRUE(same_values(slice(on_gpu, 1, 1, 7, 2).contiguous(), slice(x, 1, 1, 7, 2)));
    Tensor row = random_of({1, 3}, 2, dtype);
    EXPECT_TRUE(same_values(row.to(kGpu).expand({4, 3}).contiguous(), row.expand({4, 3}).contiguous()));
  }
}

TEST(Cuda, DtypeCastsOnTheGpuMatchTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  for (DType from : kDtypes)
    for (DType to : kDtypes) {
      SCOPED_TRACE(str(from, " -> ", to));
      Tensor x = (from == DType::Int64 ? random_of({6, 4}, 3, from) : mul(random_of({6, 4}, 3, from), 100.0));
      Tensor view = x.transpose(0, 1);
      EXPECT_TRUE(same_values(view.to(kGpu).to(to), view.to(to)));
    }
}

TEST(Cuda, FactoriesFillOnTheGpu) {
  MG_SKIP_WITHOUT_CUDA();
  for (DType dtype : kDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    TensorOptions options{.dtype = dtype, .device = kGpu};
    TensorOptions cpu{.dtype = dtype};
    EXPECT_TRUE(same_values(zeros({3, 5}, options), zeros({3, 5}, cpu)));
    EXPECT_TRUE(same_values(ones({3, 5}, options), ones({3, 5}, cpu)));
    EXPECT_TRUE(same_values(full({2, 2, 2}, -7.0, options), full({2, 2, 2}, -7.0, cpu)));
    EXPECT_EQ(zeros({0, 3}, options).numel(), 0);
    EXPECT_EQ(zeros({4}, options).device(), kGpu);
#ifdef MG_WITH_CUDA
    Tensor t = empty({1000, 3}, options);
    cuda::fill(t, 3.0);
    EXPECT_TRUE(same_values(t, full({1000, 3}, 3.0, cpu)));
#endif
  }
}

TEST(Cuda, InPlaceAddAndMulMatchTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  NoGradGuard no_grad;
  for (DType dtype : kFloatDtypes) {
    Tensor w = test::random({40, 30}, 4, dtype), src = test::random({30, 40}, 5, dtype);
    Tensor w_gpu = w.to(kGpu), src_gpu = src.to(kGpu);
    add_inplace(w, src.transpose(0, 1), -0.25);
    add_inplace(w_gpu, src_gpu.transpose(0, 1), -0.25);  // a strided source
    mul_inplace(w, 3.0);
    mul_inplace(w_gpu, 3.0);
    EXPECT_TRUE(test::all_close(w_gpu, w, 1e-6, 1e-6));
  }
}

// ---- add, sub, mul, div

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
struct BinaryCase {
  const char* name;
  BinaryFn fn;
  friend void PrintTo(const BinaryCase& c, std::ostream* os) { *os << c.name; }
};
const BinaryCase kBinaryCases[] = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
};

class CudaBinary : public ::testing::TestWithParam<BinaryCase> {};

// Inputs in [0.5, 2): no division by numbers near zero.
Tensor operand(const Shape& shape, uint64_t seed, DType dtype) {
  return test::random(shape, seed, dtype, true, 0.5, 2.0);
}

TEST_P(CudaBinary, ForwardAndBackwardMatchTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  BinaryFn fn = GetParam().fn;
  auto f = [fn](const TensorList& in) { return fn(in[0], in[1]); };
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    test::expect_same_on_devices(f, {operand({4, 3}, 1, dtype), operand({4, 3}, 2, dtype)});
    test::expect_same_on_devices(f, {operand({3, 1, 5}, 3, dtype), operand({4, 1}, 4, dtype)});  // both broadcast
    test::expect_same_on_devices(f, {operand({3}, 5, dtype), operand({2, 4, 3}, 6, dtype)});
    test::expect_same_on_devices(f, {operand({}, 7, dtype), operand({6, 5}, 8, dtype)});  // a 0-d operand
    // Large enough for many blocks, with a broadcast that leaves three dims after merging.
    test::expect_same_on_devices(f, {operand({37, 129, 65}, 9, dtype), operand({129, 1}, 10, dtype)});
  }
}

TEST_P(CudaBinary, NonContiguousInputsMatchTheCpu) {
  MG_SKIP_WITHOUT_CUDA();
  BinaryFn fn = GetParam().fn;
  auto f = [fn](const TensorList& in) {
    // Views taken inside fn, so the GPU run reads strided GPU memory and backprops through the views.
    return fn(in[0].transpose(0, 1), slice(in[1], 2, 0, 9, 2));
  };
  for (DType dtype : kFloatDtypes) {
    SCOPED_TRACE(dtype_name(dtype));
    // (2, 6, 5) transposed view, with a (1, 6, 5) every-other-column view that broadcasts over dim 0
    test::expect_same_on_devices(f, {operand({6, 2, 5}, 11, dtype), operand({1, 6, 9}, 12, dtype)});
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaBinary, ::testing::ValuesIn(kBinaryCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Cuda, DeviceMismatchNamesTheOpAndBothDevices) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor a = ones({2, 3}), b = ones({2, 3}, {.device = kGpu});
  std::vector<std::pair<std::string, std::function<void()>>> calls = {
      {"add", [&] { add(a, b); }}, {"mul", [&] { mul(b, a); }}, {"matmul", [&] { matmul(a, b.transpose(0, 1)); }}};
  for (const auto& [name, call] : calls) {
    EXPECT_TRUE(test::throws_error(call, name, "cpu"));
    EXPECT_TRUE(test::throws_error(call, name, "cuda:0"));
  }
}

// ---- sum

TEST(Cuda, SumMatchesTheCpuOverAnyDims) {
  MG_SKIP_WITHOUT_CUDA();
  struct Case {
    Shape shape;
    Shape dims;
  };
  const Case cases[] = {
      {{1000, 1100}, {}},        // everything: many chunks, then a second pass
      {{3000, 70}, {0}},         // over rows (a bias gradient): column mode, three chunks
      {{70, 3000}, {1}},         // over the last dim: row mode
      {{5, 6, 7, 8}, {1, 3}},    // interleaved kept and reduced dims
      {{5, 6, 7, 8}, {0, 2}},
      {{300, 4}, {1}},           // a short innermost reduction
      {{2, 1, 3}, {1}},          // a size-1 dim: nothing to add
  };
  for (DType dtype : kFloatDtypes)
    for (const Case& c : cases) {
      SCOPED_TRACE(str(dtype, " ", c.shape, " over ", c.dims));
      Tensor x = test::random(c.shape, 20, dtype);
      Tensor x_gpu = x.to(kGpu);
      double tol = dtype == DType::Float32 ? 1e-5 : 1e-12;
      EXPECT_TRUE(test::all_close(sum(x_gpu, c.dims), sum(x, c.dims), tol, tol));
      EXPECT_TRUE(test::all_close(sum(x_gpu, c.dims, true), sum(x, c.dims, true), tol, tol));
      EXPECT_TRUE(test::all_close(mean(x_gpu, c.dims), mean(x, c.dims), tol, tol));
      Tensor xt = x.transpose(0, -1), xt_gpu = x_gpu.transpose(0, -1);  // strided input
      EXPECT_TRUE(test::all_close(sum(xt_gpu, c.dims), sum(xt, c.dims), tol, tol));
    }
}

TEST(Cuda, SumIsDeterministicAndDifferentiable) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor x = test::random({2049, 1000}, 21, DType::Float32).to(kGpu);
  EXPECT_TRUE(same_values(sum(x), sum(x)));
  EXPECT_TRUE(same_values(sum(x, {0}), sum(x, {0})));
  auto f = [](const TensorList& in) { return sum(in[0], {0, 2}); };
  test::expect_same_on_devices(f, {test::random({4, 5, 6}, 22, DType::Float64, true)});
  test::expect_same_on_devices([](const TensorList& in) { return mean(in[0]); },
                               {test::random({3, 7}, 23, DType::Float32, true)});
}

TEST(Cuda, EmptyTensorsSumToZero) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor x = zeros({0, 4}, {.device = kGpu});
  EXPECT_TRUE(same_values(sum(x, {0}), zeros({4})));
  EXPECT_EQ(add(x, ones({4}, {.device = kGpu})).shape(), (Shape{0, 4}));
}

// ---- matmul through cuBLAS

TEST(Cuda, MatmulMatchesTheCpuForwardAndBackward) {
  MG_SKIP_WITHOUT_CUDA();
  struct Case {
    const char* name;
    Shape a, b;
    bool transpose_a = false, transpose_b = false;
  };
  const Case cases[] = {
      {"2d", {5, 7}, {7, 3}},
      {"a transposed", {7, 5}, {7, 3}, true, false},
      {"b transposed", {5, 7}, {3, 7}, false, true},
      {"both transposed", {7, 5}, {3, 7}, true, true},
      {"batched", {4, 5, 7}, {4, 7, 3}},
      {"batched, b transposed", {4, 5, 7}, {4, 3, 7}, false, true},
      {"batch times matrix", {2, 4, 5, 7}, {7, 3}},
      {"matrix times batch (stride-0 broadcast)", {5, 7}, {4, 7, 3}},
      {"broadcast batch dims", {2, 1, 5, 7}, {3, 7, 3}},
      {"vector dot vector", {7}, {7}},
      {"vector times matrix", {7}, {7, 3}},
      {"matrix times vector", {5, 7}, {7}},
      {"batch times vector", {4, 5, 7}, {7}},
      {"single row and column", {1, 7}, {7, 1}},
  };
  for (DType dtype : kFloatDtypes)
    for (const Case& c : cases) {
      SCOPED_TRACE(str(dtype, " ", c.name));
      auto f = [&](const TensorList& in) {
        Tensor a = c.transpose_a ? in[0].transpose(-1, -2) : in[0];
        Tensor b = c.transpose_b ? in[1].transpose(-1, -2) : in[1];
        return matmul(a, b);
      };
      test::expect_same_on_devices(f, {test::random(c.a, 30, dtype, true), test::random(c.b, 31, dtype, true)});
    }
}

TEST(Cuda, MatmulFloat32UsesFullFp32NotTf32) {
  MG_SKIP_WITHOUT_CUDA();
  // k = 512 products of numbers in [-1, 1): FP32 errors are ~1e-5 here, TF32's (10-bit mantissa) ~1e-3.
  Tensor a = test::random({256, 512}, 32, DType::Float64), b = test::random({512, 384}, 33, DType::Float64);
  Tensor expected = matmul(a, b);  // float64 on the CPU
  Tensor actual = matmul(a.to(DType::Float32).to(kGpu), b.to(DType::Float32).to(kGpu));
  EXPECT_TRUE(test::all_close(actual, expected, 1e-4, 1e-5));
}

TEST(Cuda, MatmulOfEmptyInnerDimIsZero) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor a = ones({3, 0}, {.device = kGpu}), b = ones({0, 4}, {.device = kGpu});
  EXPECT_TRUE(same_values(matmul(a, b), zeros({3, 4})));
}

// ---- autograd on the GPU

TEST(Cuda, GradientsAccumulateOnTheGpu) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor x = test::random({5, 3}, 40, DType::Float32).to(kGpu).requires_grad_(true);
  sum(add(x, x)).backward();  // one tensor feeding an op twice
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().device(), kGpu);
  EXPECT_TRUE(same_values(x.grad(), full({5, 3}, 2.0)));
  sum(mul(x, 3.0)).backward();  // a second graph accumulates into .grad
  EXPECT_EQ(x.grad().device(), kGpu);
  EXPECT_TRUE(same_values(x.grad(), full({5, 3}, 5.0)));
}

TEST(Cuda, GradientFlowsBackAcrossTheTransfer) {
  MG_SKIP_WITHOUT_CUDA();
  Tensor w = test::random({4, 3}, 41, DType::Float64, true);  // a CPU leaf
  Tensor y = matmul(ones({2, 4}, {.dtype = DType::Float64, .device = kGpu}), w.to(kGpu));
  sum(y).backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().device(), Device::cpu());
  EXPECT_TRUE(same_values(w.grad(), full({4, 3}, 2.0, {.dtype = DType::Float64})));
}

// ---- past 2^31 elements the kernels switch to 64-bit indexing (needs ~17 GB of GPU memory)

TEST(Cuda, LargeTensorsUse64BitIndexing) {
  MG_SKIP_WITHOUT_CUDA();
  const int64_t rows = (int64_t{1} << 16) + 1, cols = int64_t{1} << 15;  // 2^31 + 2^15 elements
  Tensor col = arange(0.0, static_cast<double>(cols), 1.0, {.dtype = DType::Float32, .device = kGpu});
  Tensor big = add(zeros({rows, cols}, {.device = kGpu}), col);  // big[i, j] = j
  EXPECT_TRUE(same_values(big.narrow(0, rows - 1, 1).view({cols}), col));
  Tensor column_sums = sum(big, {0});  // rows * j, summed in double, rounded once to float32
  EXPECT_TRUE(test::all_close(column_sums, mul(col.to(DType::Float64), static_cast<double>(rows)).to(DType::Float32),
                              0.0, 1e-7));
  double total = sum(big.narrow(1, 1, 1)).item<double>();  // a strided column: rows ones
  EXPECT_EQ(total, static_cast<double>(rows));
}

}  // namespace
}  // namespace mg
