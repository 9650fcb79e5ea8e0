#include "ops/cpu/transpose_copy.h"
#include "test_util.h"

namespace mg {
namespace {

// contiguous() of permuted views goes through the tiled transpose; to_vector() reads the view
// element by element through its strides, independently of any copy kernel.
TEST(TransposeCopy, PermutedViewsMatchElementwiseReads) {
  struct Case {
    Shape shape, dims;
    bool tiled;  // planes smaller than 8 x 8 are left to the elementwise loop
  };
  const Case cases[] = {{{33, 47}, {1, 0}, true},       {{3, 40, 65}, {0, 2, 1}, true},
                        {{2, 9, 70, 5}, {0, 3, 2, 1}, false}, {{129, 8}, {1, 0}, true},
                        {{8, 129}, {1, 0}, true},       {{4, 31, 33}, {2, 1, 0}, false},
                        {{2, 3, 100}, {2, 0, 1}, false},  {{2, 12, 70, 9}, {0, 3, 2, 1}, true}};
  uint64_t seed = 0;
  for (const Case& c : cases)
    for (DType dtype : {DType::Float32, DType::Float64}) {
      Tensor base = test::random(c.shape, ++seed, dtype);
      Tensor view = base.permute(c.dims);
      Tensor copy = empty(view.shape(), {.dtype = dtype});
      bool tiled = cpu::transpose_copy_cpu(copy, view);
      EXPECT_EQ(tiled, c.tiled) << view.shape();
      EXPECT_EQ(view.contiguous().to_vector<double>(), view.to_vector<double>()) << view.shape();
      if (tiled) {
        EXPECT_EQ(copy.to_vector<double>(), view.to_vector<double>()) << view.shape();
      }
    }
}

TEST(TransposeCopy, DeclinesLayoutsItDoesNotHandle) {
  Tensor a = test::random({16, 16}, 1, DType::Float32);
  Tensor out = empty({16, 16});
  EXPECT_FALSE(cpu::transpose_copy_cpu(out, a));  // already row-major: nothing to transpose
  EXPECT_FALSE(cpu::transpose_copy_cpu(empty({16, 16}, {.dtype = DType::Float64}), a.transpose(0, 1)));  // a cast
}

}  // namespace
}  // namespace mg
