// operator<< for tensors: nested brackets like PyTorch, eliding the middle of long dimensions.
#include <iomanip>

#include "tensor/tensor.h"

namespace mg {

namespace {
constexpr int64_t kEdgeItems = 3;  // shown at each end of a dimension longer than 2 * kEdgeItems

void print_value(std::ostream& out, double v, bool is_int) {
  if (is_int) out << static_cast<int64_t>(v);
  else out << std::setprecision(4) << std::fixed << v;
}

void print_values(std::ostream& out, const std::vector<double>& values, const Shape& shape, size_t dim,
                  int64_t offset, bool is_int, int indent) {
  if (shape.empty()) return print_value(out, values[0], is_int);  // a 0-d tensor
  int64_t n = shape[dim];
  int64_t inner = 1;
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  out << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * kEdgeItems && i == kEdgeItems) {
      out << (dim + 1 == shape.size() ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - kEdgeItems;
    }
    if (dim + 1 == shape.size()) {
      print_value(out, values[offset + i], is_int);
    } else {
      print_values(out, values, shape, dim + 1, offset + i * inner, is_int, indent + 1);
    }
    if (i + 1 < n) out << (dim + 1 == shape.size() ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  out << ']';
}
}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  std::ios_base::fmtflags flags = out.flags();
  std::streamsize precision = out.precision();
  out << "tensor(";
  print_values(out, t.to_vector<double>(), t.shape(), 0, 0, t.dtype() == DType::Int64, 7);
  out.flags(flags);  // leave the caller's stream as it was
  out.precision(precision);
  out << ", shape=" << t.shape() << ", dtype=" << t.dtype() << ", device=" << t.device();
  if (t.requires_grad()) out << ", requires_grad=true";
  return out << ')';
}

}  // namespace mg
