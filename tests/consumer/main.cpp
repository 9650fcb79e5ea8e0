// The README's example, compiled against an installed mambagrad (so CI proves it still works).
#include <mambagrad.h>

#include <iostream>

int main() {
  mg::Generator gen(42);  // explicit and seeded: the same numbers on every machine

  // x: (3, 4) and w: (4, 2) are leaves that require grad; loss is a scalar.
  mg::Tensor x = mg::randn({3, 4}, gen, {.requires_grad = true});
  mg::Tensor w = mg::randn({4, 2}, gen, {.requires_grad = true});
  mg::Tensor loss = mg::mean(mg::tanh(mg::matmul(x, w)) * 2.0 + 1.0);
  loss.backward();  // fills x.grad() (3, 4) and w.grad() (4, 2)
  std::cout << "loss = " << loss.item<float>() << "\n" << "dloss/dw = " << w.grad() << "\n";

  // Compare the analytic gradients with central finite differences, in float64.
  auto f = [](const mg::TensorList& in) { return mg::tanh(mg::matmul(in[0], in[1])); };
  mg::Tensor a = mg::randn({3, 4}, gen, {.dtype = mg::DType::Float64, .requires_grad = true});
  mg::Tensor b = mg::randn({4, 2}, gen, {.dtype = mg::DType::Float64, .requires_grad = true});
  mg::GradcheckResult check = mg::gradcheck(f, {a, b});
  std::cout << "gradcheck: " << (check ? "passed" : check.message) << "\n";
  return check ? 0 : 1;
}
