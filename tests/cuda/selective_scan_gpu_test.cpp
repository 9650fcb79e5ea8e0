// The selective scan's GPU kernels (cuda/selective_scan.cu, cuda/selective_scan_backward.cu) at
// the sizes where they split work: L = 1, 7, 129, 1000, 1500, 2049, 8193 (the kernels work in
// chunks of 16 steps), odd D (tiles of channels that end part-way), N = 1, 5 and 16 (lanes x
// states a channel: 1 x 1, 4 x 2, 4 x 4 forward; 1 x 1, 8 x 1, 8 x 2 backward), B = 1, 2 and 3,
// grouped B/C, the exact zero-order hold. Values against the
// float64 reference loop; every input's gradient, in float64, against the CPU kernel; identical
// bits on reruns; a long sequence carried through h0 in pieces against one pass.
// Each case runs whole (one segment), split along L as the kernels choose (sequences longer than
// 512 steps at these small batches), and split into 3 and 7 segments (ScopedScanSegments; fewer
// where L has fewer chunks): segments of whole chunks, the last one shorter, down to a single
// step (L = 129, 2049, 8193).
// Skipped (with a printed reason) without a GPU.
#include "cuda/scan_segments.h"
#include "ops/selective_scan.h"
#include "test_util.h"

namespace mg {
namespace {

const Device kGpu = Device::cuda(0);

struct GpuScanCase {
  const char* name;
  int64_t B, D, N, L, G;
  bool options;  // z, D_skip, delta_bias, softplus, h0
  bool exact = false;  // the exact zero-order hold of B
  friend void PrintTo(const GpuScanCase& c, std::ostream* os) { *os << c.name; }
};

// u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 on the CPU (the last four undefined without options).
TensorList make_inputs(const GpuScanCase& c, DType dtype, uint64_t seed) {
  auto r = [&](const Shape& shape, double low, double high) { return test::random(shape, seed++, dtype, false, low, high); };
  Shape bc = c.G > 1 ? Shape{c.B, c.G, c.N, c.L} : Shape{c.B, c.N, c.L};
  return {r({c.B, c.D, c.L}, -1, 1),
          c.options ? r({c.B, c.D, c.L}, -3, 0) : r({c.B, c.D, c.L}, 0.05, 0.7),
          r({c.D, c.N}, -2, -0.2),
          r(bc, -1, 1),
          r(bc, -1, 1),
          c.options ? r({c.D}, -1, 1) : Tensor(),
          c.options ? r({c.B, c.D, c.L}, -2, 2) : Tensor(),
          c.options ? r({c.D}, 0, 0.3) : Tensor(),
          c.options ? r({c.B, c.D, c.N}, -1, 1) : Tensor()};
}

TensorList on(const TensorList& in, Device device, bool requires_grad = false) {
  TensorList out;
  for (const Tensor& t : in) {
    Tensor moved = t.defined() ? t.to(device).detach() : Tensor();
    if (moved.defined() && requires_grad) moved.requires_grad_(true);
    out.push_back(moved);
  }
  return out;
}

SelectiveScanArgs args_of(const TensorList& in, bool options, bool exact = false) {
  return {.D_skip = in[5], .z = in[6], .delta_bias = in[7], .h0 = in[8], .delta_softplus = options, .exact_zoh_b = exact};
}

// The segment counts every case runs with: whole, the kernels' own choice, 3 and 7.
constexpr int64_t kSegmentSettings[] = {1, 0, 3, 7};

// y, last state and every input's gradient of sum(v y) + sum(w last).
TensorList run(const TensorList& cpu_inputs, bool options, Device device, bool exact = false) {
  TensorList in = on(cpu_inputs, device, /*requires_grad=*/true);
  SelectiveScanResult r = selective_scan(in[0], in[1], in[2], in[3], in[4], args_of(in, options, exact));
  Tensor v = test::random(r.y.shape(), 100, r.y.dtype()).to(device);
  Tensor w = test::random(r.last_state.shape(), 101, r.y.dtype()).to(device);
  (sum(r.y * v) + sum(r.last_state * w)).backward();
  TensorList out{r.y.detach().to(Device::cpu()), r.last_state.detach().to(Device::cpu())};
  for (const Tensor& t : in)
    if (t.defined()) out.push_back(t.grad().to(Device::cpu()));
  return out;
}

class GpuScan : public ::testing::TestWithParam<GpuScanCase> {};

TEST_P(GpuScan, ValuesMatchTheFloat64Reference) {
  MG_SKIP_WITHOUT_CUDA();
  const GpuScanCase& c = GetParam();
  TensorList in = make_inputs(c, DType::Float64, 1);
  SelectiveScanResult ref =
      selective_scan_reference(in[0], in[1], in[2], in[3], in[4], args_of(in, c.options, c.exact));
  for (DType dtype : {DType::Float64, DType::Float32}) {
    TensorList x;
    for (const Tensor& t : in) x.push_back(t.defined() ? t.to(dtype) : Tensor());
    TensorList g = on(x, kGpu);
    for (int64_t segments : kSegmentSettings) {
      SCOPED_TRACE(str(dtype_name(dtype), ", segments ", segments));
      cuda::ScopedScanSegments split(segments);
      SelectiveScanResult r = selective_scan(g[0], g[1], g[2], g[3], g[4], args_of(g, c.options, c.exact));
      const double tol = dtype == DType::Float64 ? 1e-11 : 2e-5;
      EXPECT_TRUE(test::all_close(r.y.to(Device::cpu()).to(DType::Float64), ref.y, tol, tol)) << "y";
      EXPECT_TRUE(test::all_close(r.last_state.to(Device::cpu()).to(DType::Float64), ref.last_state, tol, tol))
          << "last";
    }
  }
}

TEST_P(GpuScan, Float64GradientsMatchTheCpuKernel) {
  MG_SKIP_WITHOUT_CUDA();
  const GpuScanCase& c = GetParam();
  if (c.L > 2049) GTEST_SKIP() << "values only at this length (the CPU gradients take long)";
  TensorList in = make_inputs(c, DType::Float64, 2);
  TensorList cpu = run(in, c.options, Device::cpu(), c.exact);
  for (int64_t segments : kSegmentSettings) {
    SCOPED_TRACE(str("segments ", segments));
    cuda::ScopedScanSegments split(segments);
    TensorList gpu = run(in, c.options, kGpu, c.exact);
    ASSERT_EQ(cpu.size(), gpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) EXPECT_TRUE(test::all_close(gpu[i], cpu[i], 1e-10, 1e-9)) << "result " << i;
  }
}

const GpuScanCase kCases[] = {
    {"L1_B1_D5_N16", 1, 5, 16, 1, 1, true},        {"L7_B3_D7_N1", 3, 7, 1, 7, 1, false},
    {"L129_B3_D5_N16", 3, 5, 16, 129, 1, true},    {"L129_grouped_D6_N16", 3, 6, 16, 129, 2, true},
    {"L2049_B1_D5_N16", 1, 5, 16, 2049, 1, true},  {"L2049_B3_D37_N1", 3, 37, 1, 2049, 1, false},
    {"L8193_B3_D5_N16", 3, 5, 16, 8193, 1, true},  {"L300_B1_D100_N16_tiles", 1, 100, 16, 300, 1, true},
    {"L1000_B2_D9_N16_exact", 2, 9, 16, 1000, 1, true, true},
    {"L1500_grouped_D6_N5_exact", 1, 6, 5, 1500, 3, false, true},
};
INSTANTIATE_TEST_SUITE_P(Sizes, GpuScan, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<GpuScanCase>& info) { return std::string(info.param.name); });

TEST(GpuScanDeterminism, GradientsAreBitIdenticalRunAfterRun) {
  MG_SKIP_WITHOUT_CUDA();
  GpuScanCase c{"tiles", 3, 100, 16, 300, 1, true};  // several channel tiles and chunks
  TensorList in = make_inputs(c, DType::Float32, 3);
  for (int64_t segments : kSegmentSettings) {
    SCOPED_TRACE(str("segments ", segments));
    cuda::ScopedScanSegments split(segments);
    TensorList first = run(in, true, kGpu), second = run(in, true, kGpu);
    for (size_t i = 0; i < first.size(); ++i) EXPECT_TRUE(test::all_close(second[i], first[i], 0, 0)) << "result " << i;
  }
}

TEST(GpuScanChunks, ALongSequenceThroughH0InPiecesEqualsOnePass) {
  MG_SKIP_WITHOUT_CUDA();
  GpuScanCase c{"long", 2, 7, 16, 3000, 1, true};
  TensorList in = on(make_inputs(c, DType::Float64, 4), kGpu);
  SelectiveScanArgs args = args_of(in, true);
  SelectiveScanResult whole = selective_scan(in[0], in[1], in[2], in[3], in[4], args);
  Tensor state = in[8];
  TensorList ys;
  for (int64_t start : {int64_t{0}, int64_t{1000}, int64_t{1777}}) {  // pieces of 1000, 777, 1223 steps
    int64_t len = (start == 0 ? 1000 : start == 1000 ? 777 : 1223);
    auto piece = [&](const Tensor& t) { return t.narrow(-1, start, len); };
    SelectiveScanArgs a = args;
    a.z = piece(args.z);
    a.h0 = state;
    SelectiveScanResult r = selective_scan(piece(in[0]), piece(in[1]), in[2], piece(in[3]), piece(in[4]), a);
    ys.push_back(r.y);
    state = r.last_state;
  }
  EXPECT_TRUE(test::all_close(concat(ys, 2), whole.y, 1e-12, 1e-11));
  EXPECT_TRUE(test::all_close(state, whole.last_state, 1e-12, 1e-11));
}

}  // namespace
}  // namespace mg
