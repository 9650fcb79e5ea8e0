// The fused Mamba LM step: checks, sizes, the workspace and the dispatch to the CPU kernel
// (ops/cpu/mamba_step.cpp). The math is in ops/mamba_step.h.
#include "ops/mamba_step.h"

#include <algorithm>
#include <array>

#include "autograd/grad_mode.h"
#include "ops/cpu/mamba_step.h"
#include "tensor/factory.h"

namespace mg {

namespace {

constexpr const char* kOp = "mamba_step";

// Every tensor of one layer with its name (for messages), and whether the step needs it.
struct NamedInput {
  const char* name;
  const Tensor* tensor;
  bool required;
};

std::array<NamedInput, 14> inputs_of(const MambaStepLayer& l) {
  return {{{"norm_weight", &l.norm_weight, true}, {"in_weight", &l.in_weight, true},
           {"in_bias", &l.in_bias, false},        {"conv_weight", &l.conv_weight, true},
           {"conv_bias", &l.conv_bias, false},    {"x_weight", &l.x_weight, true},
           {"dt_weight", &l.dt_weight, true},     {"dt_bias", &l.dt_bias, true},
           {"A", &l.A, true},                     {"D", &l.D, true},
           {"out_weight", &l.out_weight, true},   {"out_bias", &l.out_bias, false},
           {"conv_state", &l.conv_state, true},   {"ssm_state", &l.ssm_state, true}}};
}

// The checks run at every token, so they format nothing (and allocate nothing) unless one fails.
std::string tensor_name(int64_t layer, const char* name) {
  return layer < 0 ? std::string(name) : str("layers[", layer, "].", name);
}

bool has_shape(const Tensor& t, std::initializer_list<int64_t> sizes) {
  return std::equal(t.shape().begin(), t.shape().end(), sizes.begin(), sizes.end());
}

// Why the kernel cannot run these tensors ("" when it can).
std::string unsupported_reason(const MambaStepModel& m) {
  if (m.layers.empty()) return "the model has no layers";
  if (!m.embeddings.defined() || !m.norm_f_weight.defined()) return "embeddings and norm_f_weight are required";
  const DType dtype = m.embeddings.dtype();
  const Device device = m.embeddings.device();
  if (dtype != DType::Float32 && dtype != DType::Float64)
    return str("expected float32 or float64 weights, got ", dtype_name(dtype));
  if (device.is_cuda())
    return str("no CUDA kernel yet (tensors on ", device,
               "); on a GPU the step is composed from ops (MambaLM::step does so) and replayed in a CUDA graph");
  auto unusable = [&](const Tensor& t, int64_t layer, const char* name) -> std::string {
    if (t.device() == device && t.dtype() == dtype && t.is_contiguous()) return "";
    const std::string what = tensor_name(layer, name);
    if (t.device() != device) return str(what, " is on ", t.device(), ", the embeddings on ", device);
    if (t.dtype() != dtype) return str(what, " is ", dtype_name(t.dtype()), ", the embeddings ", dtype_name(dtype));
    return str(what, " ", t.shape(), " must be contiguous");
  };
  if (std::string why = unusable(m.norm_f_weight, -1, "norm_f_weight"); !why.empty()) return why;
  for (size_t i = 0; i < m.layers.size(); ++i)
    for (const NamedInput& in : inputs_of(m.layers[i])) {
      if (!in.tensor->defined()) {
        if (in.required) return tensor_name(static_cast<int64_t>(i), in.name) + " is required";
        continue;
      }
      if (std::string why = unusable(*in.tensor, static_cast<int64_t>(i), in.name); !why.empty()) return why;
    }
  return "";
}

// The sizes, read from the tensors; every tensor's shape must agree with them.
cpu::MambaStepSizes sizes_of(const Tensor& tokens, const MambaStepModel& m) {
  const MambaStepLayer& first = m.layers[0];
  MG_CHECK(m.embeddings.dim() == 2 && first.A.dim() == 2 && first.conv_weight.dim() == 3 && first.dt_weight.dim() == 2,
           kOp, ": expected embeddings (vocab, d_model), A (d_inner, N), conv_weight (d_inner, 1, d_conv) and ",
           "dt_weight (d_inner, dt_rank), got ", m.embeddings.shape(), ", ", first.A.shape(), ", ",
           first.conv_weight.shape(), " and ", first.dt_weight.shape());
  const cpu::MambaStepSizes s{.batch = tokens.size(0), .d_model = m.embeddings.size(1), .d_inner = first.A.size(0),
                              .d_state = first.A.size(1), .d_conv = first.conv_weight.size(2),
                              .dt_rank = first.dt_weight.size(1), .vocab = m.embeddings.size(0)};
  auto expect = [](const Tensor& t, int64_t layer, const char* name, std::initializer_list<int64_t> sizes) {
    MG_CHECK(!t.defined() || has_shape(t, sizes), kOp, ": ", tensor_name(layer, name), " must be ", Shape(sizes),
             ", got ", t.shape());
  };
  expect(m.norm_f_weight, -1, "norm_f_weight", {s.d_model});
  for (size_t li = 0; li < m.layers.size(); ++li) {
    const MambaStepLayer& l = m.layers[li];
    const auto i = static_cast<int64_t>(li);
    expect(l.norm_weight, i, "norm_weight", {s.d_model});
    expect(l.in_weight, i, "in_weight", {2 * s.d_inner, s.d_model});
    expect(l.in_bias, i, "in_bias", {2 * s.d_inner});
    expect(l.conv_weight, i, "conv_weight", {s.d_inner, 1, s.d_conv});
    expect(l.conv_bias, i, "conv_bias", {s.d_inner});
    expect(l.x_weight, i, "x_weight", {s.x_dbl(), s.d_inner});
    expect(l.dt_weight, i, "dt_weight", {s.d_inner, s.dt_rank});
    expect(l.dt_bias, i, "dt_bias", {s.d_inner});
    expect(l.A, i, "A", {s.d_inner, s.d_state});
    expect(l.D, i, "D", {s.d_inner});
    expect(l.out_weight, i, "out_weight", {s.d_model, s.d_inner});
    expect(l.out_bias, i, "out_bias", {s.d_model});
    MG_CHECK(has_shape(l.conv_state, {s.batch, s.d_inner, s.d_conv}) &&
                 has_shape(l.ssm_state, {s.batch, s.d_inner, s.d_state}),
             kOp, ": tokens ", tokens.shape(), " need states ", Shape({s.batch, s.d_inner, s.d_conv}), " (conv) and ",
             Shape({s.batch, s.d_inner, s.d_state}), " (ssm), got ", l.conv_state.shape(), " and ",
             l.ssm_state.shape(), " in layer ", i);
  }
  return s;
}

template <class T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

template <class T>
cpu::MambaStepLayerPointers<T> pointers_of(const MambaStepLayer& l) {
  return {.norm_weight = l.norm_weight.data<T>(),
          .norm_eps = l.norm_eps,
          .in_weight = l.in_weight.data<T>(),
          .in_bias = optional_data<T>(l.in_bias),
          .conv_weight = l.conv_weight.data<T>(),
          .conv_bias = optional_data<T>(l.conv_bias),
          .x_weight = l.x_weight.data<T>(),
          .dt_weight = l.dt_weight.data<T>(),
          .dt_bias = l.dt_bias.data<T>(),
          .A = l.A.data<T>(),
          .D = l.D.data<T>(),
          .out_weight = l.out_weight.data<T>(),
          .out_bias = optional_data<T>(l.out_bias),
          .conv_state = l.conv_state.data<T>(),
          .ssm_state = l.ssm_state.data<T>()};
}

}  // namespace

bool mamba_step_supported(const MambaStepModel& model) { return unsupported_reason(model).empty(); }

Tensor mamba_step(const Tensor& tokens, const MambaStepModel& model, Tensor& workspace) {
  NoGradGuard no_grad;
  if (std::string why = unsupported_reason(model); !why.empty()) throw Error(str(kOp, ": ", why));
  MG_CHECK(tokens.dim() == 1 && tokens.dtype() == DType::Int64 && tokens.device() == model.embeddings.device(), kOp,
           ": expected int64 tokens (B) on ", model.embeddings.device(), ", got ", tokens.shape(), " ",
           tokens.dtype(), " on ", tokens.device());
  const cpu::MambaStepSizes s = sizes_of(tokens, model);
  const Tensor ids = tokens.contiguous();
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t id = ids.data<int64_t>()[b];
    MG_CHECK(id >= 0 && id < s.vocab, kOp, ": token ", id, " at position ", b, " is outside the vocabulary [0, ",
             s.vocab, ")");
  }
  const DType dtype = model.embeddings.dtype();
  const int64_t threads = cpu::mamba_step_threads(s);
  const int64_t workspace_numel = s.workspace_numel(threads);
  if (!workspace.defined() || workspace.numel() != workspace_numel || workspace.dtype() != dtype ||
      workspace.device() != tokens.device())
    workspace = empty({workspace_numel}, {.dtype = dtype});
  Tensor logits = empty({s.batch, s.vocab}, {.dtype = dtype});
  dispatch_floating(dtype, kOp, [&]<class T>() {
    std::vector<cpu::MambaStepLayerPointers<T>> layers;
    for (const MambaStepLayer& l : model.layers) layers.push_back(pointers_of<T>(l));
    cpu::mamba_step_cpu<T>(ids.data<int64_t>(), model.embeddings.data<T>(), layers, model.norm_f_weight.data<T>(),
                           model.norm_f_eps, s, threads, workspace.data<T>(), logits.data<T>());
  });
  return logits;
}

}  // namespace mg
