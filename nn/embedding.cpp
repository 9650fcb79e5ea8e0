#include "nn/embedding.h"

#include "nn/init.h"
#include "ops/indexing.h"
#include "tensor/factory.h"

namespace mg::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen, DType dtype)
    : UnaryModule("Embedding"), num_embeddings(num_embeddings), embedding_dim(embedding_dim) {
  MG_CHECK(num_embeddings > 0 && embedding_dim > 0,
           "Embedding: num_embeddings and embedding_dim must be positive, got ", num_embeddings, " and ",
           embedding_dim);
  weight = register_parameter("weight", empty({num_embeddings, embedding_dim}, {.dtype = dtype}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices); }

}  // namespace mg::nn
