// embedding: rows of a table picked by integer ids (the token embedding of a language model).
//   forward:  out[t, :] = weight[indices[t], :]       one row memcpy per token
//   backward: dweight[v, :] = sum of dout[t, :] over the tokens t with indices[t] == v
//             (a scatter-add, summed per row in token order: deterministic, no races)
#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/index_select.h"
#include "ops/indexing.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct EmbeddingBackward : Node {
  Tensor indices;  // saved: (N,) contiguous int64, the flattened ids
  int64_t num_embeddings = 0, embedding_dim = 0;

  std::string name() const override { return "EmbeddingBackward"; }
  void release_saved() override { indices = Tensor(); }

  TensorList backward(const TensorList& grads) override {
    // dout: (*indices.shape, E) -> (N, E); dweight: (V, E)
    Tensor dout = contiguous(grads[0]);
    Tensor dweight = zeros({num_embeddings, embedding_dim}, {.dtype = dout.dtype(), .device = dout.device()});
    if (dout.device().is_cuda()) {
      MG_CUDA_DISPATCH(cuda::index_select_backward(dweight, dout, indices, /*outer=*/1, num_embeddings, embedding_dim));
      return {dweight};
    }
    dispatch_floating(dout.dtype(), "embedding", [&]<class T>() {
      index_select_backward_cpu<T>(dweight.data<T>(), dout.data<T>(), indices.data<int64_t>(), /*outer=*/1,
                                   num_embeddings, indices.numel(), embedding_dim);
    });
    return {dweight};
  }
};

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  MG_CHECK(weight.dim() == 2, "embedding: expected weight of shape (num_embeddings, embedding_dim), got ",
           weight.shape());
  check_floating("embedding", weight);
  MG_CHECK(indices.dtype() == DType::Int64, "embedding: indices must be int64, got ", indices.dtype(), " of shape ",
           indices.shape());
  check_same_device("embedding", {weight, indices});

  // weight: (V, E), ids: (N,)
  const int64_t num_embeddings = weight.size(0), embedding_dim = weight.size(1);
  Tensor ids = contiguous(indices.detach());
  Tensor table = contiguous(weight.detach());
  Shape out_shape = indices.shape();
  out_shape.push_back(embedding_dim);
  Tensor out = empty(out_shape, {.dtype = weight.dtype(), .device = weight.device()});
  if (weight.device().is_cuda()) {  // the kernel checks the ids: an error comes at the next wait for the GPU
    MG_CUDA_DISPATCH(cuda::index_select_forward(out, table, ids, /*outer=*/1, num_embeddings, embedding_dim,
                                                /*embedding=*/true));
  } else {
    const int64_t* id = ids.data<int64_t>();
    int64_t bad = first_index_out_of_range(id, ids.numel(), num_embeddings);
    MG_CHECK(bad < 0, "embedding: index ", bad < 0 ? 0 : id[bad], " is out of range for ", num_embeddings,
             " embeddings (weight ", weight.shape(), ", indices ", indices.shape(), ")");
    index_select_forward_cpu(out.raw_data(), table.raw_data(), id, /*outer=*/1, num_embeddings, ids.numel(),
                             embedding_dim, dtype_size(weight.dtype()));
  }

  if (needs_grad({weight})) {
    auto node = std::make_shared<EmbeddingBackward>();
    node->indices = ids.detach();
    node->num_embeddings = num_embeddings;
    node->embedding_dim = embedding_dim;
    connect(node, {weight}, {out});
  }
  return out;
}

}  // namespace mg
