// The op table (tests/ops/op_table.h) on every device: each row runs in float32 and float64, on
// the CPU and on each GPU, and every output and input gradient must match the CPU's. On a GPU the
// row also runs twice and must give the same bits (no atomics in any kernel). Without a GPU the
// device rows skip with a printed reason, and the table still checks that every public op has a
// row and lists the ops that have no CUDA kernel.
#include <set>

#include "tests/ops/op_table.h"

namespace mg::test {
namespace {

// The row's inputs on `device` in `dtype` (integer inputs stay int64). Each input is drawn on the
// CPU from its own seed, so every device and run sees the same values; a transposed input is
// moved as stored, then transposed there, so the op sees a non-contiguous view on every device.
TensorList make_inputs(const OpCase& row, DType dtype, Device device) {
  TensorList inputs;
  for (size_t i = 0; i < row.inputs.size(); ++i) {
    const OpInput& spec = row.inputs[i];
    Shape stored = spec.shape;
    if (spec.transposed) std::swap(stored[stored.size() - 1], stored[stored.size() - 2]);
    Generator gen(1000 + i);
    Tensor base;
    switch (spec.kind) {
      case OpInput::Normal: base = uniform(stored, -1.0, 1.0, gen, {.dtype = dtype}); break;
      case OpInput::Positive: base = uniform(stored, 0.5, 2.0, gen, {.dtype = dtype}); break;
      case OpInput::Index: base = randint(0, spec.range, stored, gen); break;
      case OpInput::Binary: base = to_dtype(randint(0, 2, stored, gen), dtype); break;
    }
    Tensor t = base.to(device);
    if (spec.transposed) t = t.transpose(-1, -2);
    if (spec.grad && is_floating(t.dtype())) t = t.detach().requires_grad_(true);
    inputs.push_back(t);
  }
  return inputs;
}

struct Result {
  TensorList outputs;  // on the CPU
  TensorList grads;    // of each input that requires grad (undefined if none reached it)
};

// Runs the row, then backpropagates sum_i <out_i, v_i> with fixed random v_i.
Result run(const OpCase& row, DType dtype, Device device) {
  TensorList inputs = make_inputs(row, dtype, device);
  TensorList outputs = row.fn(inputs);
  Tensor loss;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (!outputs[i].requires_grad()) continue;
    Generator gen(77 + i);
    Tensor v = uniform(outputs[i].shape(), -1.0, 1.0, gen, {.dtype = dtype}).to(device);
    Tensor term = sum(mul(outputs[i], v));
    loss = loss.defined() ? add(loss, term) : term;
  }
  if (loss.defined()) loss.backward();
  Result r;
  for (const Tensor& o : outputs) r.outputs.push_back(o.detach().to(Device::cpu()));
  for (const Tensor& t : inputs)
    if (t.requires_grad()) r.grads.push_back(t.grad().defined() ? t.grad().to(Device::cpu()) : Tensor());
  return r;
}

::testing::AssertionResult same(const Result& actual, const Result& expected, double atol, double rtol) {
  if (actual.outputs.size() != expected.outputs.size() || actual.grads.size() != expected.grads.size())
    return ::testing::AssertionFailure() << "different numbers of outputs or gradients";
  auto compare = [&](const Tensor& a, const Tensor& e, const std::string& what) -> ::testing::AssertionResult {
    if (a.defined() != e.defined()) return ::testing::AssertionFailure() << what << ": defined on one side only";
    if (!a.defined()) return ::testing::AssertionSuccess();
    if (a.dtype() != e.dtype()) return ::testing::AssertionFailure() << what << ": dtypes " << a.dtype() << " vs " << e.dtype();
    auto close = all_close(a, e, atol, rtol);
    if (!close) return ::testing::AssertionFailure() << what << ": " << close.message();
    return ::testing::AssertionSuccess();
  };
  for (size_t i = 0; i < actual.outputs.size(); ++i)
    if (auto r = compare(actual.outputs[i], expected.outputs[i], str("output ", i)); !r) return r;
  for (size_t i = 0; i < actual.grads.size(); ++i)
    if (auto r = compare(actual.grads[i], expected.grads[i], str("gradient of input ", i)); !r) return r;
  return ::testing::AssertionSuccess();
}

class OpTable : public ::testing::TestWithParam<OpCase> {};

// Float32 with the row's tolerance, float64 with float64's: the GPU against the CPU.
TEST_P(OpTable, EveryGpuMatchesTheCpu) {
  const OpCase& row = GetParam();
  MG_SKIP_WITHOUT_CUDA();
  if (!row.cuda) GTEST_SKIP() << row.op << ": no CUDA kernel yet";
  for (DType dtype : {DType::Float32, DType::Float64}) {
    SCOPED_TRACE(dtype_name(dtype));
    const double atol = dtype == DType::Float32 ? row.atol : 1e-12, rtol = dtype == DType::Float32 ? row.rtol : 1e-10;
    Result cpu = run(row, dtype, Device::cpu());
    for (int g = 0; g < cuda_device_count(); ++g) {
      SCOPED_TRACE(Device::cuda(g).str());
      EXPECT_TRUE(same(run(row, dtype, Device::cuda(g)), cpu, atol, rtol));
    }
  }
}

// The same inputs give the same bits, run after run (every reduction has a fixed order).
TEST_P(OpTable, GpuRunsAreBitIdentical) {
  const OpCase& row = GetParam();
  MG_SKIP_WITHOUT_CUDA();
  if (!row.cuda) GTEST_SKIP() << row.op << ": no CUDA kernel yet";
  Result first = run(row, DType::Float32, Device::cuda(0));
  EXPECT_TRUE(same(run(row, DType::Float32, Device::cuda(0)), first, 0.0, 0.0));
}

// The CPU against itself in the two dtypes: float32 results within float32 rounding of float64's
// (this runs everywhere, so every row is exercised in CI, GPU or not).
TEST_P(OpTable, Float32TracksFloat64OnTheCpu) {
  const OpCase& row = GetParam();
  Result f32 = run(row, DType::Float32, Device::cpu());
  Result f64 = run(row, DType::Float64, Device::cpu());
  for (auto* list : {&f64.outputs, &f64.grads})
    for (Tensor& t : *list)
      if (t.defined() && t.dtype() == DType::Float64) t = to_dtype(t, DType::Float32);
  EXPECT_TRUE(same(f32, f64, 1e-4, 1e-4));
}

std::string row_name(const ::testing::TestParamInfo<OpCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(op_cases()), row_name);

TEST(OpTableCoverage, EveryPublicOpHasARow) {
  std::set<std::string> covered;
  for (const OpCase& row : op_cases()) covered.insert(row.op);
  for (const std::string& op : public_ops()) EXPECT_TRUE(covered.count(op)) << op << " has no row in the op table";
  for (const std::string& op : covered)
    EXPECT_TRUE(std::find(public_ops().begin(), public_ops().end(), op) != public_ops().end())
        << op << " has rows but is not in public_ops()";
}

TEST(OpTableCoverage, OpsWithoutACudaKernel) {
  std::set<std::string> missing;
  for (const OpCase& row : op_cases())
    if (!row.cuda) missing.insert(row.op);
  std::string list;
  for (const std::string& op : missing) list += (list.empty() ? "" : ", ") + op;
  std::cout << "[ note ] ops without a CUDA kernel: " << (list.empty() ? "none" : list) << "\n";
  EXPECT_TRUE(missing.empty()) << "ops without a CUDA kernel: " << list;
}

}  // namespace
}  // namespace mg::test
