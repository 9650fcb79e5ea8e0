#include "test_util.h"

#include <cmath>
#include <iostream>

#ifndef MG_SOURCE_DIR
#error "tests need MG_SOURCE_DIR (set by add_project_test in cmake/MambagradHelpers.cmake)"
#endif

namespace mg::test {

std::string source_path(const std::string& relative) { return std::string(MG_SOURCE_DIR) + "/" + relative; }

Tensor random(const Shape& shape, uint64_t seed, DType dtype, bool requires_grad, double low, double high) {
  Generator gen(seed);
  Tensor t = uniform(shape, low, high, gen, {.dtype = dtype});
  if (requires_grad) t.requires_grad_(true);
  return t;
}

::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double atol, double rtol) {
  const bool f64 = actual.dtype() == DType::Float64 && expected.dtype() == DType::Float64;
  if (atol == kDtypeTolerance) atol = f64 ? 1e-12 : 1e-6;
  if (rtol == kDtypeTolerance) rtol = f64 ? 1e-10 : 1e-5;
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shapes differ: " << actual.shape() << " vs " << expected.shape();
  std::vector<double> a = actual.to_vector<double>(), e = expected.to_vector<double>();
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::abs(a[i] - e[i]) <= atol + rtol * std::abs(e[i])))
      return ::testing::AssertionFailure() << "element " << i << " of shape " << actual.shape() << ": " << a[i]
                                           << " vs expected " << e[i] << " (atol " << atol << ", rtol " << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult passes_gradcheck(const GradcheckFn& fn, const TensorList& inputs, GradcheckOptions options) {
  GradcheckResult result = gradcheck(fn, inputs, options);
  if (result.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << result.message;
}

::testing::AssertionResult throws_error(const std::function<void()>& fn, const std::string& expected,
                                        const std::string& also) {
  try {
    fn();
  } catch (const Error& e) {
    std::string message = e.what();
    if (message.find(expected) == std::string::npos || message.find(also) == std::string::npos)
      return ::testing::AssertionFailure() << "message \"" << message << "\" lacks \"" << expected << "\""
                                           << (also.empty() ? "" : " or \"" + also + "\"");
    return ::testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-mg exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected \"" << expected << "\")";
}

std::vector<Device> test_devices() {
  std::vector<Device> devices{Device::cpu()};
  for (int i = 0; i < cuda_device_count(); ++i) devices.push_back(Device::cuda(i));
  return devices;
}

void expect_same_on_devices(const GradcheckFn& fn, const TensorList& cpu_inputs, double atol, double rtol) {
  if (!cuda_is_available()) {
    static bool said = false;
    if (!said) std::cout << "[ note ] no CUDA GPU on this machine: device comparisons run on the CPU only\n";
    said = true;
    return;
  }
  auto run = [&](Device device) {
    TensorList inputs;
    for (const Tensor& t : cpu_inputs) {
      if (!t.defined()) {
        inputs.push_back(t);
        continue;
      }
      Tensor moved = t.detach().to(device).detach();
      if (t.requires_grad()) moved.requires_grad_(true);
      inputs.push_back(moved);
    }
    Tensor out = fn(inputs);
    Generator gen(7);
    Tensor v = randn(out.shape(), gen, {.dtype = out.dtype()}).to(device);
    if (out.requires_grad()) out.backward(v);
    TensorList results{out.detach().to(Device::cpu())};
    for (const Tensor& t : inputs)
      if (t.defined() && t.requires_grad()) results.push_back(t.grad().defined() ? t.grad().to(Device::cpu()) : Tensor());
    return results;
  };
  TensorList expected = run(Device::cpu());
  for (int g = 0; g < cuda_device_count(); ++g) {
    TensorList actual = run(Device::cuda(g));
    ASSERT_EQ(actual.size(), expected.size());
    for (size_t i = 0; i < actual.size(); ++i) {
      if (!expected[i].defined()) continue;
      EXPECT_TRUE(all_close(actual[i], expected[i], atol, rtol)) << (i == 0 ? "output" : "gradient " + std::to_string(i));
    }
  }
}

}  // namespace mg::test
