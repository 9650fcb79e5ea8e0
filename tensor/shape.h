#pragma once
// Shapes and strides: plain vectors of int64 (sizes in elements, strides in elements).
#include <cstdint>
#include <ostream>
#include <vector>

namespace mg {

// A vector of int64 sizes (or strides). A type of its own, in mg, so that printing it works from
// any namespace (argument-dependent lookup finds operator<< below).
struct Shape : std::vector<int64_t> {
  using std::vector<int64_t>::vector;
};

int64_t shape_numel(const Shape& shape);
// Row-major strides of a contiguous tensor of this shape.
Shape contiguous_strides(const Shape& shape);
// Wraps a possibly negative dimension into [0, ndim); throws naming `op` if out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);
// NumPy broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// Prints "[2, 3]".
std::ostream& operator<<(std::ostream& out, const Shape& shape);

}  // namespace mg
