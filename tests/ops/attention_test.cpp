// scaled_dot_product_attention: the fused CPU kernel against the composed reference (matmul,
// mask, softmax, matmul) at awkward sizes, values and gradients, float32 and float64; float64
// gradcheck of the fused op; strided inputs (packed heads, a KV cache); thread-count independence;
// the KV cache; errors.
#include "ops/attention.h"

#include "nn/kv_cache.h"
#include "ops/cpu/parallel.h"
#include "test_util.h"

namespace mg {
namespace {

struct AttentionCase {
  const char* name;
  int64_t B, H, Lq, Lk, Dh;
  bool causal = true;
  friend void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }
};

// The kernel's key and query blocks are 64 wide: sizes below, at and across that edge.
const AttentionCase kCases[] = {
    {"L1", 2, 3, 1, 1, 8},
    {"L7_Dh1", 1, 2, 7, 7, 1},
    {"L13_Dh3", 2, 2, 13, 13, 3},
    {"L64_Dh16", 1, 2, 64, 64, 16},
    {"L65_Dh64", 1, 1, 65, 65, 64},
    {"L130_Dh5", 2, 1, 130, 130, 5},
    {"L200_Dh64", 1, 2, 200, 200, 64},
    {"decode_Lq1_Lk77", 2, 2, 1, 77, 8},   // one new token against a KV cache
    {"chunk_Lq9_Lk140", 1, 2, 9, 140, 7},  // a chunk of new tokens against a KV cache
    {"few_Lq3_Lk200_Dh64", 1, 2, 3, 200, 64},  // under 8 rows: the row-by-row forward
    {"L70_last_block_6", 1, 1, 70, 70, 4},     // a last query block of 6 rows
    {"full_L70_Dh9", 2, 2, 70, 70, 9, false},
    {"full_Lq5_Lk66", 1, 1, 5, 66, 4, false},
    {"full_Lq80_Lk3", 1, 2, 80, 3, 6, false},  // more queries than keys: fine without the mask
};

TensorList make_qkv(const AttentionCase& c, DType dtype, uint64_t seed) {
  // Scores of a few units: the softmax is neither uniform nor one-hot.
  return {test::random({c.B, c.H, c.Lq, c.Dh}, seed, dtype, false, -2, 2),
          test::random({c.B, c.H, c.Lk, c.Dh}, seed + 1, dtype, false, -2, 2),
          test::random({c.B, c.H, c.Lk, c.Dh}, seed + 2, dtype, false, -1, 1)};
}

// Output and the gradients of sum(out * w) with respect to q, k, v.
TensorList run(const TensorList& qkv, bool fused, bool causal) {
  TensorList leaves;
  for (const Tensor& t : qkv) leaves.push_back(t.detach().requires_grad_(true));
  AttentionOptions options{.causal = causal};
  Tensor out = fused ? scaled_dot_product_attention(leaves[0], leaves[1], leaves[2], options)
                     : scaled_dot_product_attention_reference(leaves[0], leaves[1], leaves[2], options);
  Tensor w = test::random(out.shape(), 99, out.dtype());
  sum(out * w).backward();
  return {out.detach(), leaves[0].grad(), leaves[1].grad(), leaves[2].grad()};
}

class Attention : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(Attention, FusedMatchesComposedReference) {
  const AttentionCase& c = GetParam();
  for (DType dtype : {DType::Float64, DType::Float32}) {
    TensorList qkv = make_qkv(c, dtype, 1);
    TensorList fused = run(qkv, true, c.causal), reference = run(qkv, false, c.causal);
    const double tol = dtype == DType::Float64 ? 1e-12 : 2e-5;
    const char* what[] = {"out", "dq", "dk", "dv"};
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(fused[i].dtype(), dtype);
      EXPECT_TRUE(test::all_close(fused[i], reference[i], tol, tol)) << what[i] << " " << dtype;
    }
  }
}

TEST_P(Attention, ResultsDoNotDependOnTheThreadCount) {
  const AttentionCase& c = GetParam();
  TensorList qkv = make_qkv(c, DType::Float32, 5);
  auto with_threads = [&](int threads) {
    int previous = get_num_threads();
    set_num_threads(threads);
    TensorList r = run(qkv, true, c.causal);
    set_num_threads(previous);
    std::vector<std::vector<float>> values;
    for (const Tensor& t : r) values.push_back(t.to_vector<float>());
    return values;
  };
  EXPECT_EQ(with_threads(1), with_threads(2));
}

INSTANTIATE_TEST_SUITE_P(Sizes, Attention, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(AttentionGradcheck, Float64CentralDifferences) {
  auto fn = [](bool causal) {
    return [causal](const TensorList& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.causal = causal}); };
  };
  for (const AttentionCase& c : {AttentionCase{"small", 2, 2, 5, 5, 3}, AttentionCase{"two_key_blocks", 1, 1, 67, 67, 2},
                                 AttentionCase{"decode", 1, 2, 2, 9, 4}, AttentionCase{"full", 1, 2, 4, 6, 3, false}}) {
    TensorList qkv = make_qkv(c, DType::Float64, 11);
    for (Tensor& t : qkv) t.requires_grad_(true);
    EXPECT_TRUE(test::passes_gradcheck(fn(c.causal), qkv)) << c.name;
  }
  // An explicit scale.
  TensorList qkv = make_qkv({"scaled", 1, 1, 4, 4, 2}, DType::Float64, 12);
  for (Tensor& t : qkv) t.requires_grad_(true);
  EXPECT_TRUE(test::passes_gradcheck(
      [](const TensorList& in) { return scaled_dot_product_attention(in[0], in[1], in[2], {.scale = 0.3}); }, qkv));
}

TEST(Attention, ReadsPackedHeadsInPlaceAndLaysOutputAsTokensByHeads) {
  // GPT's layout: one projection (B, L, 3 * H * Dh) split into q, k, v and viewed as heads.
  const int64_t H = 3, Dh = 5;
  Tensor qkv = test::random({2, 70, 3 * H * Dh}, 20, DType::Float64, true);
  auto heads = [&](const Tensor& packed, int which) {  // (B, L, 3 H Dh) -> (B, H, L, Dh), strided
    return narrow(packed, 2, which * H * Dh, H * Dh).view({packed.size(0), packed.size(1), H, Dh}).transpose(1, 2);
  };
  Tensor q = heads(qkv, 0), k = heads(qkv, 1), v = heads(qkv, 2);
  ASSERT_FALSE(q.is_contiguous());
  Tensor out = scaled_dot_product_attention(q, k, v);
  Tensor expected = scaled_dot_product_attention_reference(contiguous(q), contiguous(k), contiguous(v));
  EXPECT_TRUE(test::all_close(out, expected, 1e-12, 1e-12));
  EXPECT_TRUE(out.transpose(1, 2).is_contiguous());  // (B, L, H, Dh): heads merge back without a copy
  EXPECT_TRUE(test::passes_gradcheck(
      [&](const TensorList& in) { return scaled_dot_product_attention(heads(in[0], 0), heads(in[0], 1), heads(in[0], 2)); },
      {test::random({1, 6, 3 * H * Dh}, 21, DType::Float64, true)}));
}

TEST(Attention, KVCacheGenerationMatchesFullSequence) {
  // Feeding a sequence in pieces through a KV cache gives the rows of full causal attention.
  const int64_t B = 2, H = 2, L = 150, Dh = 6;
  TensorList qkv = make_qkv({"kv", B, H, L, L, Dh}, DType::Float64, 30);
  Tensor full = scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]);
  nn::KVCache cache;
  int64_t position = 0;
  for (int64_t piece : {40, 1, 1, 23, 1, 84}) {
    auto [keys, values] = cache.append(narrow(qkv[1], 2, position, piece), narrow(qkv[2], 2, position, piece));
    EXPECT_EQ(keys.size(2), position + piece);
    Tensor out = scaled_dot_product_attention(narrow(qkv[0], 2, position, piece), keys, values);
    EXPECT_TRUE(test::all_close(out, narrow(full, 2, position, piece), 1e-13, 1e-12)) << "at " << position;
    position += piece;
  }
  EXPECT_EQ(cache.length(), L);
  EXPECT_EQ(cache.used_bytes(), 2 * B * H * L * Dh * 8);
  EXPECT_GE(cache.allocated_bytes(), cache.used_bytes());
  EXPECT_LE(cache.allocated_bytes(), 2 * cache.used_bytes());
  EXPECT_TRUE(test::throws_error([&] { cache.append(zeros({B, H + 1, 1, Dh}, {.dtype = DType::Float64}),
                                                    zeros({B, H + 1, 1, Dh}, {.dtype = DType::Float64})); },
                                 "KVCache.append", "[2, 3, 1, 6]"));
  EXPECT_TRUE(test::throws_error([&] { cache.append(zeros({B, H, 1, Dh}), zeros({B, H, 2, Dh})); }, "KVCache.append"));
  cache.clear();
  EXPECT_EQ(cache.length(), 0);
  EXPECT_EQ(cache.allocated_bytes(), 0);
}

TEST(Attention, Errors) {
  Tensor q = zeros({1, 2, 4, 8}), k = zeros({1, 2, 4, 8});
  const std::string op = "scaled_dot_product_attention";
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(zeros({2, 4, 8}), k, k); }, op, "[2, 4, 8]"));
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(q, zeros({1, 2, 4, 7}), k); }, op, "[1, 2, 4, 7]"));
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(q, k, zeros({1, 3, 4, 8})); }, op, "do not match"));
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(zeros({1, 2, 5, 8}), k, k); }, op,
                                 "more queries (5) than keys (4)"));
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(q, zeros({1, 2, 0, 8}), zeros({1, 2, 0, 8}), {.causal = false}); },
                                 op, "at least one key"));
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(q, k, k.to(DType::Float64)); }, op, "float64"));
  EXPECT_TRUE(test::throws_error([&] { scaled_dot_product_attention(q, k, k, {.scale = -1}); }, op, "scale"));
  // No queries: an empty result, and empty gradients.
  Tensor none = scaled_dot_product_attention(zeros({1, 2, 0, 8}), k, k);
  EXPECT_EQ(none.shape(), (Shape{1, 2, 0, 8}));
}

}  // namespace
}  // namespace mg
