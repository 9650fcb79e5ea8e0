#pragma once
// Shared test helpers: random inputs, closeness, gradcheck, error messages, and running one
// test description on every available device (CUDA cases skip with a printed reason).
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "mambagrad.h"

namespace mg::test {

// Uniform in [low, high), seeded: the same seed gives the same tensor everywhere.
Tensor random(const Shape& shape, uint64_t seed, DType dtype = DType::Float64, bool requires_grad = false,
              double low = -1.0, double high = 1.0);

// |actual - expected| <= atol + rtol * |expected| everywhere (shapes must match). Left out, the
// tolerances follow the less precise dtype of the two: for float64 atol 1e-12 and rtol 1e-10
// (room for a different summation order, not for a float32 step), otherwise atol 1e-6 and rtol 1e-5.
inline constexpr double kDtypeTolerance = -1;
::testing::AssertionResult all_close(const Tensor& actual, const Tensor& expected, double atol = kDtypeTolerance,
                                     double rtol = kDtypeTolerance);

// gradcheck with the project's float64 tolerances; on failure prints the first mismatch.
::testing::AssertionResult passes_gradcheck(const GradcheckFn& fn, const TensorList& inputs,
                                            GradcheckOptions options = {});

// fn throws mg::Error whose message contains `expected` (and, if given, `also`).
::testing::AssertionResult throws_error(const std::function<void()>& fn, const std::string& expected,
                                        const std::string& also = "");

// A file of the source checkout, e.g. source_path("tests/fixtures/safetensors/x.safetensors"):
// the project root is compiled in (MG_SOURCE_DIR), so tests find their committed fixtures from
// any working directory.
std::string source_path(const std::string& relative);

// The devices to run on: the CPU, and CUDA when a GPU is present.
std::vector<Device> test_devices();

// Runs fn on CPU inputs and on copies moved to each GPU; the outputs and the gradients of inputs
// that require grad must agree within tolerance. Without a GPU this only runs the CPU side, and
// says so once.
void expect_same_on_devices(const GradcheckFn& fn, const TensorList& cpu_inputs, double atol = 1e-5,
                            double rtol = 1e-4);

}  // namespace mg::test

// Skips the current test with a printed reason when no GPU is present.
#define MG_SKIP_WITHOUT_CUDA()                                       \
  do {                                                               \
    if (!::mg::cuda_is_available())                                  \
      GTEST_SKIP() << "no CUDA GPU on this machine; CUDA test skipped"; \
  } while (0)
