// The rows of the op table (tests/ops/op_table.h). Sizes are awkward on purpose: 1, odd, not
// multiples of 8 or 32, broadcast, transposed views, empty; and large enough somewhere to cross the
// kernels' own block and chunk sizes (a 1000-wide softmax row, 5000 embedding ids, a 129-step scan).
#include "tests/ops/op_table.h"

namespace mg::test {

namespace {

using K = OpInput::Kind;

OpInput in(Shape shape, K kind = K::Normal) { return {.shape = std::move(shape), .kind = kind}; }
OpInput transposed(Shape shape) { return {.shape = std::move(shape), .transposed = true}; }
OpInput index(Shape shape, int64_t range) { return {.shape = std::move(shape), .kind = K::Index, .range = range, .grad = false}; }
OpInput constant(Shape shape, K kind = K::Normal) { return {.shape = std::move(shape), .kind = kind, .grad = false}; }

// Wraps a one-output op.
template <class F>
std::function<TensorList(const TensorList&)> one(F f) {
  return [f](const TensorList& x) { return TensorList{f(x)}; };
}

void add_binary(std::vector<OpCase>& rows) {
  struct Named {
    const char* name;
    Tensor (*f)(const Tensor&, const Tensor&);
  };
  for (Named b : {Named{"add", add}, Named{"sub", sub}, Named{"mul", mul}, Named{"div", div}}) {
    K rhs = std::string(b.name) == "div" ? K::Positive : K::Normal;
    auto f = b.f;
    rows.push_back({str(b.name, "_broadcast"), b.name, {in({7, 1, 33}), in({5, 1}, rhs)}, one([f](auto& x) { return f(x[0], x[1]); })});
    rows.push_back({str(b.name, "_transposed"), b.name, {transposed({3, 37}), transposed({3, 37})}, one([f](auto& x) { return f(x[0], x[1]); })});
    rows.push_back({str(b.name, "_scalar_operand"), b.name, {in({4, 9}), in({}, rhs)}, one([f](auto& x) { return f(x[0], x[1]); })});
    rows.push_back({str(b.name, "_empty"), b.name, {in({0, 3}), in({3}, rhs)}, one([f](auto& x) { return f(x[0], x[1]); })});
  }
}

void add_unary(std::vector<OpCase>& rows) {
  struct Named {
    const char* name;
    Tensor (*f)(const Tensor&);
    K kind;
  };
  for (Named u : {Named{"neg", neg, K::Normal}, Named{"exp", exp, K::Normal}, Named{"log", log, K::Positive},
                  Named{"sqrt", sqrt, K::Positive}, Named{"rsqrt", rsqrt, K::Positive}, Named{"abs", abs, K::Normal},
                  Named{"sigmoid", sigmoid, K::Normal}, Named{"tanh", tanh, K::Normal}, Named{"relu", relu, K::Normal},
                  Named{"gelu", gelu, K::Normal}, Named{"silu", silu, K::Normal}}) {
    auto f = u.f;
    rows.push_back({str(u.name, "_odd"), u.name, {in({3, 37}, u.kind)}, one([f](auto& x) { return f(x[0]); })});
    OpInput t = transposed({5, 33});
    t.kind = u.kind;
    rows.push_back({str(u.name, "_transposed"), u.name, {t}, one([f](auto& x) { return f(x[0]); })});
  }
  for (double e : {2.0, 3.0, 0.5, 0.0})
    rows.push_back({str("pow_", static_cast<int>(e * 10)), "pow", {in({4, 33}, K::Positive)},
                    one([e](auto& x) { return pow(x[0], e); })});
  rows.push_back({"gelu_tanh_odd", "gelu_tanh", {in({3, 37})}, one([](auto& x) { return gelu_tanh(mul(x[0], 4.0)); }),
                  1e-6, 1e-5});
  rows.push_back({"gelu_tanh_transposed", "gelu_tanh", {transposed({5, 33})}, one([](auto& x) { return gelu_tanh(x[0]); }),
                  1e-6, 1e-5});
  rows.push_back({"softplus_default", "softplus", {in({4, 33})}, one([](auto& x) { return softplus(mul(x[0], 30.0)); })});
  rows.push_back({"softplus_beta", "softplus", {in({4, 33})}, one([](auto& x) { return softplus(x[0], 2.0, 1.0); })});
}

void add_reductions(std::vector<OpCase>& rows) {
  rows.push_back({"sum_all", "sum", {in({5, 33, 7})}, one([](auto& x) { return sum(x[0]); })});
  rows.push_back({"sum_dim1", "sum", {in({5, 33, 7})}, one([](auto& x) { return sum(x[0], {1}); })});
  rows.push_back({"sum_dims02_keepdim", "sum", {transposed({5, 7, 33})}, one([](auto& x) { return sum(x[0], {0, 2}, true); })});
  rows.push_back({"sum_long_row", "sum", {in({3, 70001})}, one([](auto& x) { return sum(x[0], {1}); })});
  rows.push_back({"sum_empty", "sum", {in({0, 4})}, one([](auto& x) { return sum(x[0], {0}); })});
  rows.push_back({"mean_dim0", "mean", {in({37, 5})}, one([](auto& x) { return mean(x[0], {0}); })});
  rows.push_back({"mean_all", "mean", {transposed({9, 31})}, one([](auto& x) { return mean(x[0]); })});
  for (int64_t dim : {0, 1, 2})
    rows.push_back({str("max_dim", dim), "max", {in({4, 37, 5})}, one([dim](auto& x) { return max(x[0], dim); })});
  rows.push_back({"max_long_rows", "max", {in({3, 5000})}, one([](auto& x) { return max(x[0], 1, true); })});
  rows.push_back({"max_all", "max", {transposed({7, 9})}, one([](auto& x) { return max(x[0]); })});
  rows.push_back({"argmax_dim1", "argmax", {constant({4, 37, 5})}, one([](auto& x) { return argmax(x[0], 1); })});
  rows.push_back({"argmax_rows", "argmax", {constant({3, 50280})}, one([](auto& x) { return argmax(x[0], -1); })});
}

void add_softmax(std::vector<OpCase>& rows) {
  for (const char* op : {"softmax", "log_softmax"}) {
    auto f = std::string(op) == "softmax" ? softmax : log_softmax;
    rows.push_back({str(op, "_last_37"), op, {in({5, 37})}, one([f](auto& x) { return f(mul(x[0], 4.0), -1); })});
    rows.push_back({str(op, "_last_1000"), op, {in({3, 1000})}, one([f](auto& x) { return f(mul(x[0], 8.0), 1); })});
    rows.push_back({str(op, "_middle_dim"), op, {in({3, 17, 5})}, one([f](auto& x) { return f(x[0], 1); })});
    rows.push_back({str(op, "_transposed"), op, {transposed({6, 33})}, one([f](auto& x) { return f(x[0], 0); })});
    rows.push_back({str(op, "_one_class"), op, {in({4, 1})}, one([f](auto& x) { return f(x[0], -1); })});
  }
  rows.push_back({"cross_entropy_rows", "cross_entropy", {in({37, 11}), index({37}, 11)},
                  one([](auto& x) { return cross_entropy(mul(x[0], 3.0), x[1]); })});
  rows.push_back({"cross_entropy_ignored_rows", "cross_entropy", {in({6, 50}), index({6}, 3)},
                  one([](auto& x) { return cross_entropy(x[0], x[1], /*ignore_index=*/1); })});
  rows.push_back({"cross_entropy_3d_vocab", "cross_entropy", {in({2, 3, 1001}), index({2, 3}, 1001)},
                  one([](auto& x) { return cross_entropy(x[0], x[1]); })});
}

void add_indexing(std::vector<OpCase>& rows) {
  rows.push_back({"embedding_repeats", "embedding", {in({11, 5}), index({3, 7}, 11)},
                  one([](auto& x) { return embedding(x[0], x[1]); })});
  // 5000 ids: the backward's sort runs passes across tiles; 33-wide rows, 4 of 1000 rows unused.
  rows.push_back({"embedding_5000_ids", "embedding", {in({1000, 33}), index({5000}, 996)},
                  one([](auto& x) { return embedding(x[0], x[1]); })});
  rows.push_back({"index_select_dim0", "index_select", {in({9, 6}), index({13}, 9)},
                  one([](auto& x) { return index_select(x[0], 0, x[1]); })});
  rows.push_back({"index_select_dim1_outer", "index_select", {transposed({4, 10, 3}), index({7}, 3)},
                  one([](auto& x) { return index_select(x[0], 1, x[1]); })});
  rows.push_back({"concat_three", "concat", {in({2, 3, 5}), transposed({2, 5, 4}), in({2, 1, 5})},
                  one([](auto& x) { return concat({x[0], x[1].transpose(1, 2), x[2]}, 1); })});
  rows.push_back({"split_uneven", "split", {in({4, 37})}, [](const TensorList& x) { return split(x[0], {5, 0, 32}, 1); }});
  rows.push_back({"split_one_piece_used", "split", {in({6, 7})},
                  [](const TensorList& x) { return TensorList{split(x[0], {2, 4}, 0)[1]}; }});
  rows.push_back({"chunk_ragged", "chunk", {in({10, 3})}, [](const TensorList& x) { return chunk(x[0], 3, 0); }});
  rows.push_back({"where_broadcast", "where", {constant({5, 1}, K::Binary), in({5, 33}), in({33})},
                  one([](auto& x) { return where(x[0], x[1], x[2]); })});
  rows.push_back({"where_int_condition", "where", {index({4, 9}, 2), in({4, 9}), transposed({4, 9})},
                  one([](auto& x) { return where(x[0], x[1], x[2]); })});
  rows.push_back({"masked_fill_rows", "masked_fill", {in({6, 35}), constant({6, 1}, K::Binary)},
                  one([](auto& x) { return masked_fill(x[0], x[1], -3.5); })});
}

void add_copies_and_products(std::vector<OpCase>& rows) {
  rows.push_back({"contiguous_permuted", "contiguous", {in({3, 5, 7})},
                  one([](auto& x) { return contiguous(permute(x[0], {2, 0, 1})); })});
  rows.push_back({"clone_sliced", "clone", {in({9, 13})}, one([](auto& x) { return clone(slice(x[0], 1, 1, 12, 3)); })});
  rows.push_back({"to_dtype_round_trip", "to_dtype", {in({4, 33})}, one([](auto& x) {
                    DType other = x[0].dtype() == DType::Float32 ? DType::Float64 : DType::Float32;
                    return to_dtype(to_dtype(x[0], other), x[0].dtype());
                  })});
  rows.push_back({"matmul_odd", "matmul", {in({3, 5}), in({5, 7})}, one([](auto& x) { return matmul(x[0], x[1]); })});
  rows.push_back({"matmul_batched_broadcast", "matmul", {in({2, 1, 3, 4}), transposed({3, 4, 5})},
                  one([](auto& x) { return matmul(x[0], x[1]); })});
  rows.push_back({"matmul_vector", "matmul", {in({33}), in({33, 6})}, one([](auto& x) { return matmul(x[0], x[1]); })});
  rows.push_back({"matmul_long_k", "matmul", {in({5, 600}), in({600, 3})}, one([](auto& x) { return matmul(x[0], x[1]); }),
                  1e-5, 1e-5, "600-term dot products summed in another order by cuBLAS than by Eigen"});
  rows.push_back({"linear_bias", "linear", {in({2, 3, 33}), in({7, 33}), in({7})},
                  one([](auto& x) { return linear(x[0], x[1], x[2]); })});
  rows.push_back({"linear_no_bias_transposed_input", "linear", {transposed({4, 5}), in({3, 5})},
                  one([](auto& x) { return linear(x[0], x[1]); })});
}

void add_layers(std::vector<OpCase>& rows) {
  rows.push_back({"causal_conv1d_bias", "causal_conv1d", {in({2, 5, 9}), in({5, 4}), in({5})},
                  one([](auto& x) { return causal_conv1d(x[0], x[1], x[2]); })});
  rows.push_back({"causal_conv1d_transposed_input", "causal_conv1d", {transposed({3, 33, 7}), in({33, 3})},
                  one([](auto& x) { return causal_conv1d(x[0], x[1]); })});
  rows.push_back({"causal_conv1d_kernel1_len1", "causal_conv1d", {in({1, 3, 1}), in({3, 1}), in({3})},
                  one([](auto& x) { return causal_conv1d(x[0], x[1], x[2]); })});
  rows.push_back({"causal_conv1d_step", "causal_conv1d_step", {constant({2, 5, 4}), constant({2, 5}), constant({5, 4}), constant({5})},
                  [](const TensorList& x) {
                    Tensor state = x[0].clone();
                    Tensor out = causal_conv1d_step(state, x[1], x[2], x[3]);
                    return TensorList{out, state};
                  }});
  rows.push_back({"rms_norm_weight", "rms_norm", {in({3, 37}), in({37})},
                  one([](auto& x) { return rms_norm(x[0], x[1]); })});
  rows.push_back({"rms_norm_many_rows", "rms_norm", {in({2, 150, 33}), in({33})},
                  one([](auto& x) { return rms_norm(x[0], x[1], 1e-6); })});
  rows.push_back({"rms_norm_no_weight_wide", "rms_norm", {in({2, 1000})}, one([](auto& x) { return rms_norm(x[0], Tensor()); })});
  // LayerNorm and attention (the GPT's).
  rows.push_back({"layer_norm_weight_bias", "layer_norm", {in({3, 37}), in({37}), in({37})},
                  one([](auto& x) { return layer_norm(x[0], x[1], x[2]); }), 1e-6, 1e-5});
  rows.push_back({"layer_norm_transposed_many_rows", "layer_norm", {transposed({2, 33, 150}), in({150}), in({150})},
                  one([](auto& x) { return layer_norm(x[0], x[1], x[2], 1e-6); }), 1e-6, 1e-5});
  rows.push_back({"layer_norm_no_parameters_wide", "layer_norm", {in({2, 1000})},
                  one([](auto& x) { return layer_norm(x[0], Tensor(), Tensor()); }), 1e-6, 1e-5});
  rows.push_back({"attention_causal_L70_Dh5", "scaled_dot_product_attention", {in({2, 3, 70, 5}), in({2, 3, 70, 5}), in({2, 3, 70, 5})},
                  one([](auto& x) { return scaled_dot_product_attention(mul(x[0], 3.0), x[1], x[2]); }), 1e-6, 1e-5});
  rows.push_back({"attention_decode_Lk77", "scaled_dot_product_attention", {in({1, 2, 1, 8}), in({1, 2, 77, 8}), in({1, 2, 77, 8})},
                  one([](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }), 1e-6, 1e-5});
  // A chunk of 9 new queries against 40 keys: the causal mask's offset (made on the device).
  rows.push_back({"attention_chunk_Lq9_Lk40", "scaled_dot_product_attention", {in({1, 2, 9, 8}), in({1, 2, 40, 8}), in({1, 2, 40, 8})},
                  one([](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }), 1e-6, 1e-5});
  rows.push_back({"attention_full_transposed", "scaled_dot_product_attention",
                  {transposed({1, 2, 9, 66}), in({1, 2, 9, 66}), in({1, 2, 9, 66})},
                  one([](auto& x) { return scaled_dot_product_attention(x[0], x[1], x[2], {.causal = false}); }), 1e-6,
                  1e-5});
  rows.push_back({"dropout_same_mask", "dropout", {transposed({7, 33})}, one([](auto& x) {
                    Generator gen(5);
                    return dropout(x[0], 0.3, gen);
                  })});
  for (bool exact : {true, false}) {
    const char* op = exact ? "discretize_zoh" : "discretize_simplified";
    rows.push_back({str(op, "_broadcast"), op, {in({2, 3, 5, 1}, K::Positive), in({3, 1, 4}), in({2, 1, 5, 4})},
                    [exact](const TensorList& x) {
                      Tensor A = mul(x[1], 2.0);  // some |delta A| under 0.5 (the series) and some over
                      DiscretizedSSM d = exact ? discretize_zoh(x[0], A, x[2]) : discretize_simplified(x[0], A, x[2]);
                      return TensorList{d.A_bar, d.B_bar};
                    }});
  }
}

// One selective scan row: u, delta (B, D, L); A (D, N) from a positive input, negated; Bm, Cm
// (B, G, N, L) or (B, N, L); optional D_skip, z, delta_bias, h0 (in that order after Cm).
struct ScanRow {
  const char* name;
  int64_t B, D, L, N, G;
  bool options, exact, softplus;
};

void add_scan(std::vector<OpCase>& rows) {
  const ScanRow scans[] = {
      {"plain_1_1_1_1", 1, 1, 1, 1, 1, false, false, false},
      {"plain_odd", 3, 5, 7, 16, 1, false, false, false},
      {"options_L129_N16", 2, 5, 129, 16, 1, true, false, true},
      {"options_grouped_N17", 3, 6, 33, 17, 2, true, false, true},
      {"exact_hold_N1", 1, 3, 40, 1, 1, true, true, false},
      {"options_N64_wide", 2, 70, 20, 64, 1, true, false, true},
  };
  for (const ScanRow& r : scans) {
    std::vector<OpInput> inputs = {in({r.B, r.D, r.L}), in({r.B, r.D, r.L}, r.softplus ? K::Normal : K::Positive),
                                   in({r.D, r.N}, K::Positive),
                                   in(r.G > 1 ? Shape{r.B, r.G, r.N, r.L} : Shape{r.B, r.N, r.L}),
                                   in(r.G > 1 ? Shape{r.B, r.G, r.N, r.L} : Shape{r.B, r.N, r.L})};
    if (r.options)
      for (Shape s : {Shape{r.D}, Shape{r.B, r.D, r.L}, Shape{r.D}, Shape{r.B, r.D, r.N}}) inputs.push_back(in(s));
    const ScanRow row = r;
    rows.push_back({str("selective_scan_", r.name), "selective_scan", inputs,
                    [row](const TensorList& x) {
                      SelectiveScanArgs args{.delta_softplus = row.softplus, .exact_zoh_b = row.exact};
                      if (row.options) args = {.D_skip = x[5], .z = x[6], .delta_bias = x[7], .h0 = x[8],
                                               .delta_softplus = row.softplus, .exact_zoh_b = row.exact};
                      Tensor delta = row.softplus ? x[1] : mul(x[1], 0.2);
                      SelectiveScanResult out = selective_scan(x[0], delta, neg(x[2]), x[3], x[4], args);
                      return TensorList{out.y, out.last_state};
                    },
                    2e-6, 2e-5, "sums of L x N products whose order differs between the CPU's and the GPU's kernels"});
  }
  rows.push_back({"selective_scan_step", "selective_scan_step",
                  {constant({2, 5, 16}), constant({2, 5}), constant({2, 5}), constant({5, 16}, K::Positive),
                   constant({2, 16}), constant({2, 16}), constant({5}), constant({2, 5}), constant({5})},
                  [](const TensorList& x) {
                    Tensor state = x[0].clone();
                    SelectiveScanArgs args{.D_skip = x[6], .z = x[7], .delta_bias = x[8], .delta_softplus = true};
                    Tensor y = selective_scan_step(state, x[1], x[2], neg(x[3]), x[4], x[5], args);
                    return TensorList{y, state};
                  }});
}

}  // namespace

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> rows = [] {
    std::vector<OpCase> r;
    add_binary(r);
    add_unary(r);
    add_reductions(r);
    add_softmax(r);
    add_indexing(r);
    add_copies_and_products(r);
    add_layers(r);
    add_scan(r);
    return r;
  }();
  return rows;
}

const std::vector<std::string>& public_ops() {
  static const std::vector<std::string> ops = {
      "add", "sub", "mul", "div", "neg", "exp", "log", "sqrt", "rsqrt", "pow", "abs", "sigmoid", "tanh", "relu",
      "gelu", "silu", "softplus", "sum", "mean", "max", "argmax", "softmax", "log_softmax", "cross_entropy",
      "embedding", "index_select", "concat", "split", "chunk", "where", "masked_fill", "contiguous", "clone",
      "to_dtype", "matmul", "linear", "causal_conv1d", "causal_conv1d_step", "rms_norm", "dropout",
      "discretize_zoh", "discretize_simplified", "selective_scan", "selective_scan_step", "gelu_tanh", "layer_norm",
      "scaled_dot_product_attention"};
  return ops;
}

}  // namespace mg::test
