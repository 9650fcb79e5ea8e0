#pragma once
// The op table: every public op, described once, run on every device (tests/ops/op_table_test.cpp).
// A row names the op, its inputs (shapes with 1, odd sizes, non-multiples of 32, broadcasting,
// non-contiguous views, empty tensors) and a function that applies the op to them; the harness
// runs the row in float32 and float64 on the CPU and on each GPU, and compares every output and
// every input's gradient with the CPU's. Adding an op is adding rows.
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

namespace mg::test {

struct OpInput {
  enum Kind { Normal, Positive, Index, Binary };
  Shape shape;
  Kind kind = Normal;  // Normal: U(-1, 1); Positive: U(0.5, 2); Index: int64 in [0, range); Binary: 0 or 1
  int64_t range = 0;
  bool grad = true;         // a floating input that requires grad
  bool transposed = false;  // a non-contiguous view: stored with the last two dims swapped, then transposed
};

struct OpCase {
  std::string name;  // unique, [A-Za-z0-9_]
  std::string op;    // the public op it exercises (the coverage check counts these)
  std::vector<OpInput> inputs;
  std::function<TensorList(const TensorList&)> fn;
  // |gpu - cpu| <= atol + rtol |cpu| in float32 (float64: 1e-12 + 1e-10 |cpu|). A row that loosens
  // them says why in `why`.
  double atol = 1e-6, rtol = 1e-5;
  std::string why{};
  bool cuda = true;  // false: the op has no CUDA kernel yet (listed by OpTable.OpsWithoutACudaKernel)
};

const std::vector<OpCase>& op_cases();
inline void PrintTo(const OpCase& row, std::ostream* out) { *out << row.name; }  // for GoogleTest's messages
// Every public op of ops/ (the coverage check: each must have a row).
const std::vector<std::string>& public_ops();

}  // namespace mg::test
