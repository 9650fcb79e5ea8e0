#pragma once
#include "nn/module.h"
#include "tensor/random.h"

namespace mg::nn {

// A lookup table: int64 ids (any shape) -> (*ids.shape, embedding_dim).
// Parameter: weight (num_embeddings, embedding_dim), init N(0, 1) as PyTorch's nn.Embedding.
class Embedding : public UnaryModule {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, Generator& gen, DType dtype = DType::Float32);
  Tensor forward(const Tensor& indices) override;

  const int64_t num_embeddings, embedding_dim;
  Tensor weight;  // (num_embeddings, embedding_dim)
};

}  // namespace mg::nn
