// The selective scan: the fused kernel against the float64 reference loop (values) and against
// finite differences (gradients of every input, with and without every option), the Blelloch
// scan, the recurrent step, chunked use through h0, determinism across thread counts, and errors.
#include "ops/selective_scan.h"

#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

// One test problem: sizes and which options are on.
struct ScanCase {
  const char* name;
  int64_t B = 2, D = 3, N = 3, L = 6, G = 1;
  bool grouped = false;  // Bm, Cm as (B, G, N, L) rather than (B, N, L)
  bool z = false, D_skip = false, delta_bias = false, softplus = false, h0 = false, exact = false;
  friend void PrintTo(const ScanCase& c, std::ostream* os) { *os << c.name; }
};

ScanCase all_options(const char* name, int64_t B, int64_t D, int64_t N, int64_t L, int64_t G = 1) {
  return {name, B, D, N, L, G, true, true, true, true, true, true, false};
}

// The nine inputs in the op's order: u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0 (undefined
// when the option is off). Random but well-conditioned: delta' ~ 0.05..1, A < 0 (a stable scan).
TensorList make_inputs(const ScanCase& c, DType dtype, uint64_t seed, bool requires_grad = false) {
  auto r = [&](const Shape& shape, double low, double high) {
    return test::random(shape, seed++, dtype, requires_grad, low, high);
  };
  Shape bc = c.grouped ? Shape{c.B, c.G, c.N, c.L} : Shape{c.B, c.N, c.L};
  Tensor u = r({c.B, c.D, c.L}, -1, 1);
  Tensor delta = c.softplus ? r({c.B, c.D, c.L}, -3, 0) : r({c.B, c.D, c.L}, 0.05, 0.7);
  Tensor A = r({c.D, c.N}, -2, -0.2);
  Tensor Bm = r(bc, -1, 1), Cm = r(bc, -1, 1);
  return {u, delta, A, Bm, Cm,
          c.D_skip ? r({c.D}, -1, 1) : Tensor(),
          c.z ? r({c.B, c.D, c.L}, -2, 2) : Tensor(),
          c.delta_bias ? r({c.D}, 0, 0.3) : Tensor(),
          c.h0 ? r({c.B, c.D, c.N}, -1, 1) : Tensor()};
}

SelectiveScanArgs args_of(const TensorList& in, const ScanCase& c) {
  return {.D_skip = in[5], .z = in[6], .delta_bias = in[7], .h0 = in[8], .delta_softplus = c.softplus,
          .exact_zoh_b = c.exact};
}
SelectiveScanResult scan(const TensorList& in, const ScanCase& c) {
  return selective_scan(in[0], in[1], in[2], in[3], in[4], args_of(in, c));
}
SelectiveScanResult reference(const TensorList& in, const ScanCase& c) {
  return selective_scan_reference(in[0], in[1], in[2], in[3], in[4], args_of(in, c));
}

TensorList fresh_leaves(const TensorList& in) {
  TensorList leaves;
  for (const Tensor& t : in) leaves.push_back(t.defined() ? t.detach().requires_grad_(true) : Tensor());
  return leaves;
}
TensorList grads_of(const TensorList& leaves) {
  TensorList grads;
  for (const Tensor& t : leaves) grads.push_back(t.defined() ? t.grad() : Tensor());
  return grads;
}

// The gradients of loss = sum(v y) + sum(w last_state) with respect to every defined input.
TensorList gradients(const TensorList& in, const ScanCase& c) {
  TensorList leaves = fresh_leaves(in);
  SelectiveScanResult r = scan(leaves, c);
  Tensor v = test::random(r.y.shape(), 100, r.y.dtype()), w = test::random(r.last_state.shape(), 101, r.y.dtype());
  (sum(r.y * v) + sum(r.last_state * w)).backward();
  return grads_of(leaves);
}

::testing::AssertionResult all_close_lists(const TensorList& a, const TensorList& b, double atol, double rtol) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].defined() != b[i].defined()) return ::testing::AssertionFailure() << "input " << i << ": one undefined";
    if (!a[i].defined()) continue;
    auto r = test::all_close(a[i], b[i], atol, rtol);
    if (!r) return ::testing::AssertionFailure() << "input " << i << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// ---- Forward: the fast kernel vs the float64 reference, at awkward sizes

struct ForwardCase {
  ScanCase c;
  DType dtype;
  friend void PrintTo(const ForwardCase& f, std::ostream* os) { *os << f.c.name << " " << f.dtype; }
};

class ScanForward : public ::testing::TestWithParam<ForwardCase> {};

TEST_P(ScanForward, MatchesReference) {
  const auto& [c, dtype] = GetParam();
  TensorList in = make_inputs(c, dtype, 10);
  SelectiveScanResult fast = scan(in, c), ref = reference(in, c);
  ASSERT_EQ(fast.y.dtype(), dtype);
  ASSERT_EQ(ref.y.dtype(), DType::Float64);
  const bool f32 = dtype == DType::Float32;
  EXPECT_TRUE(test::all_close(fast.y, ref.y, f32 ? 1e-5 : 1e-12, f32 ? 1e-4 : 1e-10));
  EXPECT_TRUE(test::all_close(fast.last_state, ref.last_state, f32 ? 1e-5 : 1e-12, f32 ? 1e-4 : 1e-10));
}

std::vector<ForwardCase> forward_cases() {
  ScanCase plain1{"plain_L129_N16_B3", 3, 5, 16, 129}, plain2{"plain_L1000_N17", 1, 3, 17, 1000};
  ScanCase exact = all_options("exact_L129_N17_G5", 3, 5, 17, 129, 5);
  exact.exact = true;
  ScanCase cases[] = {all_options("all_L1000_N16", 1, 3, 16, 1000), all_options("all_L129_N17_B3", 3, 5, 17, 129),
                      all_options("all_L7_N1", 1, 7, 1, 7),         all_options("all_L1_N16_B3", 3, 3, 16, 1),
                      all_options("all_L129_N17_G3", 2, 6, 17, 129, 3), plain1, plain2, exact};
  std::vector<ForwardCase> out;
  for (const ScanCase& c : cases)
    for (DType dtype : {DType::Float32, DType::Float64}) out.push_back({c, dtype});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Sizes, ScanForward, ::testing::ValuesIn(forward_cases()),
                         [](const auto& info) { return str(info.param.c.name, "_", info.param.dtype); });

TEST(SelectiveScan, ExactHoldAtAZeroAndSoftplusThreshold) {
  // A = 0 exactly, tiny, and around the series cutoff |delta A| = 0.5; delta + bias beyond 20.
  ScanCase c = all_options("edge", 2, 4, 5, 70, 2);
  c.exact = true;
  for (DType dtype : {DType::Float32, DType::Float64}) {
    TensorList in = make_inputs(c, dtype, 20);
    in[2] = from_vector<double>({0, -1e-12, 1e-9, -0.3, -2,  //
                                 -1e-4, -0.49, -0.51, -0.2, 0,  //
                                 -3, -1e-7, 0, -1.01, -0.99,   //
                                 0, 0, 0, 0, 0},
                                {4, 5}, {.dtype = dtype});
    in[1] = test::random({2, 4, 70}, 21, dtype, false, -3, 25);
    SelectiveScanResult fast = scan(in, c), ref = reference(in, c);
    const bool f32 = dtype == DType::Float32;
    EXPECT_TRUE(test::all_close(fast.y, ref.y, f32 ? 1e-4 : 1e-11, f32 ? 1e-4 : 1e-10));
    EXPECT_TRUE(test::all_close(fast.last_state, ref.last_state, f32 ? 1e-4 : 1e-11, f32 ? 1e-4 : 1e-10));
  }
}

// ---- Gradients: float64 finite differences, every input, every option on and off

class ScanGradcheck : public ::testing::TestWithParam<ScanCase> {};

// y and last_state in one output, so one gradcheck covers both: y + sum_n w last_state.
Tensor scan_output(const TensorList& in, const ScanCase& c, const Tensor& w) {
  SelectiveScanResult r = scan(in, c);
  return r.y + sum(r.last_state * w, {2}, /*keepdim=*/true);
}

TEST_P(ScanGradcheck, EveryInput) {
  const ScanCase& c = GetParam();
  TensorList in = make_inputs(c, DType::Float64, 30, /*requires_grad=*/true);
  Tensor w = test::random({c.B, c.D, c.N}, 40);
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& x) { return scan_output(x, c, w); }, in));
}

ScanCase with(ScanCase c, const char* name, bool ScanCase::*option) {
  c.name = name;
  c.*option = true;
  return c;
}

std::vector<ScanCase> gradcheck_cases() {
  ScanCase plain{"plain"};
  ScanCase grouped{"grouped", 2, 4, 3, 6, 2, true};
  ScanCase all = all_options("all", 2, 4, 3, 7, 2);
  ScanCase all_exact = with(all, "all_exact", &ScanCase::exact);
  ScanCase long_all = all_options("long_multichunk_N17", 1, 1, 17, 130);
  ScanCase long_exact = with(all_options("long_exact", 1, 1, 17, 70), "long_exact", &ScanCase::exact);
  return {plain,
          with(plain, "z", &ScanCase::z),
          with(plain, "D_skip", &ScanCase::D_skip),
          with(plain, "delta_bias", &ScanCase::delta_bias),
          with(plain, "softplus", &ScanCase::softplus),
          with(plain, "h0", &ScanCase::h0),
          with(plain, "exact", &ScanCase::exact),
          grouped,
          with(grouped, "grouped_exact", &ScanCase::exact),
          all,
          all_exact,
          long_all,
          long_exact};
}

INSTANTIATE_TEST_SUITE_P(Options, ScanGradcheck, ::testing::ValuesIn(gradcheck_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(SelectiveScan, GradcheckYOnlyLastStateOnlyAndNonContiguous) {
  ScanCase c = all_options("c", 2, 3, 2, 5);
  TensorList in = make_inputs(c, DType::Float64, 50, true);
  auto y_only = [&](const TensorList& x) { return scan(x, c).y; };
  auto last_only = [&](const TensorList& x) { return scan(x, c).last_state; };
  EXPECT_TRUE(test::passes_gradcheck(y_only, in));
  EXPECT_TRUE(test::passes_gradcheck(last_only, in));
  // u, z as (B, L, D) transposed; A as (N, D) transposed.
  in[0] = test::random({2, 5, 3}, 51).transpose(1, 2).detach().requires_grad_(true);
  in[6] = test::random({2, 5, 3}, 52).transpose(1, 2).detach().requires_grad_(true);
  in[2] = test::random({2, 3}, 53, DType::Float64, false, -2, -0.2).transpose(0, 1).detach().requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(y_only, in));
}

TEST(SelectiveScan, ExactHoldGradcheckAtAZero) {
  ScanCase c = with(ScanCase{"c", 1, 2, 3, 5}, "c", &ScanCase::exact);
  TensorList in = make_inputs(c, DType::Float64, 60, true);
  in[2] = from_vector<double>({0, -1e-9, -0.3, 1e-7, -0.5 / 0.4, -2}, {2, 3}).requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck([&](const TensorList& x) { return scan(x, c).y; }, in));
}

TEST(SelectiveScan, Float32GradientsMatchFloat64) {
  ScanCase c = all_options("c", 2, 5, 17, 300);
  for (bool exact : {false, true}) {
    c.exact = exact;
    TensorList in64 = make_inputs(c, DType::Float64, 70), in32;
    for (const Tensor& t : in64) in32.push_back(t.defined() ? t.to(DType::Float32) : Tensor());
    EXPECT_TRUE(all_close_lists(gradients(in32, c), gradients(in64, c), 1e-3, 1e-3)) << "exact " << exact;
  }
}

// ---- The Blelloch scan, the recurrent step, chunked scans, determinism

TEST(SelectiveScan, ParallelScanMatchesSequential) {
  ScanCase cases[] = {all_options("a", 2, 3, 5, 100), all_options("b", 1, 4, 16, 257, 2), ScanCase{"c", 3, 2, 1, 1}};
  cases[1].exact = true;
  for (const ScanCase& c : cases) {
    TensorList in = make_inputs(c, DType::Float64, 80);
    SelectiveScanResult seq = scan(in, c);
    SelectiveScanResult par = selective_scan_parallel(in[0], in[1], in[2], in[3], in[4], args_of(in, c));
    EXPECT_TRUE(test::all_close(par.y, seq.y, 1e-12, 1e-10)) << c.name;
    EXPECT_TRUE(test::all_close(par.last_state, seq.last_state, 1e-12, 1e-10)) << c.name;
  }
}

// The step kernel has a path per N it unrolls (8, 16, 32, 64) and one for any other N, and walks
// channels in blocks of 64 (D = 70: a full block and a remainder).
TEST(SelectiveScan, StepByStepEqualsScan) {
  const std::vector<ScanCase> cases = {
      all_options("N 5, groups", 2, 4, 5, 9, 2), all_options("N 8", 1, 70, 8, 5),
      all_options("N 16, two blocks, groups", 3, 70, 16, 5, 2), all_options("N 32", 2, 6, 32, 5),
      all_options("N 64", 1, 3, 64, 4), all_options("N 17", 2, 5, 17, 4)};
  for (const ScanCase& c : cases) {
    for (DType dtype : {DType::Float32, DType::Float64}) {
      SCOPED_TRACE(c.name);
      TensorList in = make_inputs(c, dtype, 90);
      // The step has its own kernel: float32 agrees to rounding, float64 to 1e-10.
      const double atol = dtype == DType::Float32 ? 1e-6 : 1e-12, rtol = dtype == DType::Float32 ? 1e-5 : 1e-10;
      SelectiveScanResult full = scan(in, c);
      SelectiveScanArgs args = args_of(in, c);
      Tensor state = in[8].clone();
      args.h0 = Tensor();
      auto at = [](const Tensor& x, int64_t t) { return x.narrow(-1, t, 1).squeeze(-1); };
      for (int64_t t = 0; t < c.L; ++t) {
        SelectiveScanArgs step_args = args;
        step_args.z = at(in[6], t);
        Tensor y = selective_scan_step(state, at(in[0], t), at(in[1], t), in[2], at(in[3], t), at(in[4], t), step_args);
        EXPECT_TRUE(test::all_close(y, at(full.y, t), atol, rtol)) << dtype << " step " << t;
      }
      EXPECT_TRUE(test::all_close(state, full.last_state, atol, rtol)) << dtype;
    }
  }
}

TEST(SelectiveScan, TwoPiecesThroughH0EqualOnePass) {
  ScanCase c = all_options("c", 2, 3, 5, 150, 3);
  TensorList in = make_inputs(c, DType::Float64, 100);
  Tensor v = test::random({2, 3, 150}, 110), w = test::random({2, 3, 5}, 111);
  TensorList one = fresh_leaves(in), two = fresh_leaves(in);
  SelectiveScanResult full = scan(one, c);
  (sum(full.y * v) + sum(full.last_state * w)).backward();

  const int64_t split = 70;  // not a multiple of the 64-step chunk
  const bool along_time[] = {true, true, false, true, true, false, true, false, false};  // u, delta, Bm, Cm, z
  TensorList first, second;
  for (size_t i = 0; i < two.size(); ++i) {
    first.push_back(along_time[i] ? two[i].narrow(-1, 0, split) : two[i]);
    second.push_back(along_time[i] ? two[i].narrow(-1, split, 150 - split) : two[i]);
  }
  SelectiveScanResult a = scan(first, c);
  second[8] = a.last_state;
  SelectiveScanResult b = scan(second, c);
  EXPECT_TRUE(test::all_close(a.y, full.y.narrow(2, 0, split), 1e-12, 1e-10));
  EXPECT_TRUE(test::all_close(b.y, full.y.narrow(2, split, 150 - split), 1e-12, 1e-10));
  EXPECT_TRUE(test::all_close(b.last_state, full.last_state, 1e-12, 1e-10));
  (sum(a.y * v.narrow(2, 0, split)) + sum(b.y * v.narrow(2, split, 150 - split)) + sum(b.last_state * w)).backward();
  EXPECT_TRUE(all_close_lists(grads_of(two), grads_of(one), 1e-12, 1e-9));
}

TEST(SelectiveScan, GradientsBitIdenticalAcrossThreadCounts) {
  const int saved = get_num_threads();
  ScanCase c = all_options("c", 2, 192, 16, 150);  // 3 slices of 64 channels per batch row
  for (bool exact : {false, true}) {
    c.exact = exact;
    TensorList in = make_inputs(c, DType::Float32, 120);
    std::vector<std::vector<float>> reference;
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      TensorList grads = gradients(in, c);
      std::vector<std::vector<float>> values;
      for (const Tensor& g : grads) values.push_back(g.defined() ? g.to_vector<float>() : std::vector<float>{});
      if (reference.empty()) reference = values;
      for (size_t i = 0; i < values.size(); ++i)
        EXPECT_TRUE(values[i] == reference[i]) << "input " << i << " differs with " << threads << " threads";
    }
  }
  set_num_threads(saved);
}

// ---- Errors name the op and the shapes

TEST(SelectiveScan, ErrorsNameOpAndShapes) {
  ScanCase c{"c", 2, 4, 3, 5, 1};
  TensorList in = make_inputs(c, DType::Float32, 130);
  auto call = [&](TensorList x, SelectiveScanArgs a = {}) { selective_scan(x[0], x[1], x[2], x[3], x[4], a); };
  auto replaced = [&](size_t i, const Tensor& t) { TensorList x = in; x[i] = t; return x; };
  auto option = [](Tensor SelectiveScanArgs::*field, const Tensor& t) {
    SelectiveScanArgs a;
    a.*field = t;
    return a;
  };
  EXPECT_TRUE(test::throws_error([&] { call(replaced(1, ones({2, 4, 6}))); }, "selective_scan", "[2, 4, 6]"));
  EXPECT_TRUE(test::throws_error([&] { call(replaced(2, ones({3, 3}))); }, "selective_scan: expected A", "[3, 3]"));
  EXPECT_TRUE(test::throws_error([&] { call(replaced(3, ones({2, 3, 6}))); }, "selective_scan: expected Bm", "[2, 3, 6]"));
  EXPECT_TRUE(test::throws_error([&] { call(replaced(4, ones({2, 1, 3, 5}))); }, "expected Cm", "[2, 1, 3, 5]"));
  EXPECT_TRUE(test::throws_error([&] { call(replaced(3, ones({2, 3, 3, 5}))); }, "divisible by G = 3", "[2, 4, 5]"));
  EXPECT_TRUE(test::throws_error([&] { call(in, option(&SelectiveScanArgs::D_skip, ones({3}))); },
                                 "selective_scan: expected D_skip", "[3]"));
  EXPECT_TRUE(test::throws_error([&] { call(in, option(&SelectiveScanArgs::z, ones({2, 4}))); },
                                 "selective_scan: expected z", "[2, 4]"));
  EXPECT_TRUE(test::throws_error([&] { call(in, option(&SelectiveScanArgs::delta_bias, ones({4, 1}))); },
                                 "expected delta_bias", "[4, 1]"));
  EXPECT_TRUE(test::throws_error([&] { call(in, option(&SelectiveScanArgs::h0, ones({2, 4, 4}))); },
                                 "expected h0", "[2, 4, 4]"));
  Tensor i64 = ones({2, 4, 5}, {.dtype = DType::Int64});
  EXPECT_TRUE(test::throws_error([&] { call(replaced(0, i64)); }, "selective_scan", "int64"));
  EXPECT_TRUE(test::throws_error([&] { call(replaced(1, in[1].to(DType::Float64))); }, "selective_scan", "float64"));
  EXPECT_TRUE(test::throws_error([&] { call(replaced(0, ones({2, 4}))); }, "selective_scan: expected u", "[2, 4]"));
  EXPECT_TRUE(test::throws_error([&] { selective_scan_reference(in[0], in[1], in[2], ones({1}), in[4]); },
                                 "selective_scan_reference", "[1]"));
  Tensor state = zeros({2, 4, 3});
  auto at = [](const Tensor& x) { return x.narrow(-1, 0, 1).squeeze(-1); };
  EXPECT_TRUE(test::throws_error([&] { selective_scan_step(state, at(in[0]), ones({2, 5}), in[2], at(in[3]), at(in[4])); },
                                 "selective_scan_step", "[2, 5]"));
  Tensor bad_state = zeros({2, 4, 2});
  EXPECT_TRUE(test::throws_error(
      [&] { selective_scan_step(bad_state, at(in[0]), at(in[1]), in[2], at(in[3]), at(in[4])); },
      "selective_scan_step: expected state", "[2, 4, 2]"));
}

TEST(SelectiveScan, WrongDeviceNamesTheOp) {
  MG_SKIP_WITHOUT_CUDA();
  ScanCase c{"c"};
  TensorList in = make_inputs(c, DType::Float32, 140);
  Tensor u = in[0].to(Device::cuda(0));
  EXPECT_TRUE(test::throws_error([&] { selective_scan(u, in[1], in[2], in[3], in[4]); }, "selective_scan", "cuda"));
  // The float64 reference and the Blelloch scan run on the CPU only, and say so.
  TensorList all_gpu;
  for (const Tensor& t : in) all_gpu.push_back(t.defined() ? t.to(Device::cuda(0)) : Tensor());
  EXPECT_TRUE(test::throws_error([&] { selective_scan_reference(all_gpu[0], all_gpu[1], all_gpu[2], all_gpu[3], all_gpu[4]); },
                                 "selective_scan_reference", "runs on the CPU"));
  EXPECT_TRUE(test::throws_error([&] { selective_scan_parallel(all_gpu[0], all_gpu[1], all_gpu[2], all_gpu[3], all_gpu[4]); },
                                 "selective_scan_parallel", "runs on the CPU"));
}

}  // namespace
}  // namespace mg
