// concat joins tensors along one dimension; split and chunk cut one into views along one.
//   concat forward:  out = [t_0 | t_1 | ...] along dim (each input copied into its window)
//   concat backward: d out / d t_i picks t_i's window, so dt_i = narrow(dout, dim, offset_i, size_i)
//   split/chunk forward: views of consecutive windows along dim (no copy)
//   split/chunk backward: one node for all pieces: dx = [dpiece_0 | dpiece_1 | ...] along dim, with
//             zeros for pieces no gradient reached (one buffer, instead of a zero-filled input-sized
//             buffer per piece as separate narrow() views would need).
#include "autograd/function.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/indexing.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct ConcatBackward : Node {
  int64_t dim = 0;
  std::vector<int64_t> sizes;  // each input's size along dim

  std::string name() const override { return "ConcatBackward"; }

  TensorList backward(const TensorList& grads) override {
    TensorList dinputs(sizes.size());
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (next_edges[i].node) dinputs[i] = narrow(grads[0], dim, offset, sizes[i]);
      offset += sizes[i];
    }
    return dinputs;
  }
};

struct SplitBackward : Node {
  Shape input_shape;
  int64_t dim = 0;
  std::vector<int64_t> sizes;  // each piece's size along dim

  std::string name() const override { return "SplitBackward"; }

  TensorList backward(const TensorList& grads) override {
    const Tensor* any = nullptr;
    bool all_defined = true;
    for (const Tensor& g : grads) {
      if (g.defined()) any = any ? any : &g;
      all_defined = all_defined && g.defined();
    }
    MG_ASSERT(any != nullptr, "the engine calls backward only when some gradient arrived");
    TensorOptions options{.dtype = any->dtype(), .device = any->device()};
    Tensor dx = all_defined ? empty(input_shape, options) : zeros(input_shape, options);
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (grads[i].defined()) {
        Tensor window = narrow(dx, dim, offset, sizes[i]);
        copy_inplace(window, grads[i]);
      }
      offset += sizes[i];
    }
    return {dx};
  }
};

// The shape of the result; throws naming the first input that does not fit.
Shape concat_shape(const TensorList& tensors, int64_t dim) {
  const Tensor& first = tensors[0];
  Shape out = first.shape();
  out[dim] = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    bool fits = t.dim() == first.dim();
    for (int64_t d = 0; fits && d < t.dim(); ++d) fits = d == dim || t.size(d) == first.size(d);
    MG_CHECK(fits, "concat: tensor ", i, " has shape ", t.shape(), " but tensor 0 has shape ", first.shape(),
                   "; shapes must match except in dimension ", dim);
    out[dim] += t.size(dim);
  }
  return out;
}

}  // namespace

Tensor concat(const TensorList& tensors, int64_t dim) {
  MG_CHECK(!tensors.empty(), "concat: expected at least one tensor, got an empty list");
  for (size_t i = 0; i < tensors.size(); ++i) MG_CHECK(tensors[i].defined(), "concat: tensor ", i, " is undefined");
  MG_CHECK(tensors[0].dim() > 0, "concat: cannot concatenate 0-d tensors (shape [])");
  int64_t d = wrap_dim(dim, tensors[0].dim(), "concat");
  check_same_device("concat", tensors);
  check_same_dtype("concat", tensors);
  Tensor out = empty(concat_shape(tensors, d), {.dtype = tensors[0].dtype(), .device = tensors[0].device()});
  {
    NoGradGuard no_grad;
    int64_t offset = 0;
    for (const Tensor& t : tensors) {
      Tensor window = narrow(out, d, offset, t.size(d));
      copy_inplace(window, t);
      offset += t.size(d);
    }
  }
  if (needs_grad(tensors)) {
    auto node = std::make_shared<ConcatBackward>();
    node->dim = d;
    for (const Tensor& t : tensors) node->sizes.push_back(t.size(d));
    connect(node, tensors, {out});
  }
  return out;
}

TensorList split(const Tensor& x, const Shape& sizes, int64_t dim) {
  MG_CHECK(x.dim() > 0, "split: cannot split a 0-d tensor (shape [])");
  int64_t d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t size : sizes) {
    MG_CHECK(size >= 0, "split: negative size in ", sizes);
    total += size;
  }
  MG_CHECK(total == x.size(d), "split: sizes ", sizes, " add up to ", total, ", not to the size ", x.size(d),
           " of dimension ", d, " of shape ", x.shape());
  TensorList pieces;
  int64_t offset = 0;
  for (int64_t size : sizes) {
    Shape piece_shape = x.shape();
    piece_shape[d] = size;
    pieces.push_back(make_view(x, piece_shape, x.strides(), x.offset() + offset * x.strides()[d]));
    offset += size;
  }
  if (needs_grad({x})) {
    auto node = std::make_shared<SplitBackward>();
    node->input_shape = x.shape();
    node->dim = d;
    node->sizes.assign(sizes.begin(), sizes.end());
    connect(node, {x}, pieces);
  }
  return pieces;
}

// Like PyTorch: pieces of ceil(size / chunks) elements, so there may be fewer than `chunks`
// pieces (6 elements in 4 chunks gives 3 pieces of 2); an empty dimension gives `chunks` empty pieces.
TensorList chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  MG_CHECK(chunks > 0, "chunk: chunks must be positive, got ", chunks);
  MG_CHECK(x.dim() > 0, "chunk: cannot chunk a 0-d tensor (shape [])");
  int64_t d = wrap_dim(dim, x.dim(), "chunk");
  int64_t size = x.size(d);
  if (size == 0) return split(x, Shape(chunks, 0), d);
  int64_t piece = (size + chunks - 1) / chunks;
  Shape sizes(size / piece, piece);
  if (size % piece != 0) sizes.push_back(size % piece);
  return split(x, sizes, d);
}

}  // namespace mg
