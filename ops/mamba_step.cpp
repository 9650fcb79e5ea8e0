// The fused Mamba LM step: checks, sizes, the workspace and the dispatch to the CPU kernel
// (ops/cpu/mamba_step.cpp). The math is in ops/mamba_step.h.
#include "ops/mamba_step.h"

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

std::vector<NamedInput> inputs_of(const MambaStepLayer& l) {
  return {{"norm_weight", &l.norm_weight, true}, {"in_weight", &l.in_weight, true},
          {"in_bias", &l.in_bias, false},        {"conv_weight", &l.conv_weight, true},
          {"conv_bias", &l.conv_bias, false},    {"x_weight", &l.x_weight, true},
          {"dt_weight", &l.dt_weight, true},     {"dt_bias", &l.dt_bias, true},
          {"A", &l.A, true},                     {"D", &l.D, true},
          {"out_weight", &l.out_weight, true},   {"out_bias", &l.out_bias, false},
          {"conv_state", &l.conv_state, true},   {"ssm_state", &l.ssm_state, true}};
}

// Why the kernel cannot run these tensors ("" when it can).
std::string unsupported_reason(const MambaStepModel& m) {
  if (m.layers.empty()) return "the model has no layers";
  if (!m.embeddings.defined() || !m.norm_f_weight.defined()) return "embeddings and norm_f_weight are required";
  const DType dtype = m.embeddings.dtype();
  if (dtype != DType::Float32 && dtype != DType::Float64)
    return str("expected float32 or float64 weights, got ", dtype_name(dtype));
  if (m.embeddings.device().is_cuda())
    return str("no CUDA kernel yet (tensors on ", m.embeddings.device(),
               "); on a GPU the step is composed from ops (MambaLM::step does so) and replayed in a CUDA graph");
  auto usable = [&](const Tensor& t, const std::string& name) -> std::string {
    if (t.device() != m.embeddings.device()) return str(name, " is on ", t.device(), ", the embeddings on ", m.embeddings.device());
    if (t.dtype() != dtype) return str(name, " is ", dtype_name(t.dtype()), ", the embeddings ", dtype_name(dtype));
    if (!t.is_contiguous()) return str(name, " ", t.shape(), " must be contiguous");
    return "";
  };
  if (std::string why = usable(m.norm_f_weight, "norm_f_weight"); !why.empty()) return why;
  for (size_t i = 0; i < m.layers.size(); ++i)
    for (const NamedInput& in : inputs_of(m.layers[i])) {
      const std::string name = str("layers[", i, "].", in.name);
      if (!in.tensor->defined()) {
        if (in.required) return name + " is required";
        continue;
      }
      if (std::string why = usable(*in.tensor, name); !why.empty()) return why;
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
  auto expect = [](const Tensor& t, const std::string& name, const Shape& shape) {
    MG_CHECK(!t.defined() || t.shape() == shape, kOp, ": ", name, " must be ", shape, ", got ", t.shape());
  };
  expect(m.norm_f_weight, "norm_f_weight", {s.d_model});
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const MambaStepLayer& l = m.layers[i];
    const std::string at = str("layers[", i, "].");
    expect(l.norm_weight, at + "norm_weight", {s.d_model});
    expect(l.in_weight, at + "in_weight", {2 * s.d_inner, s.d_model});
    expect(l.in_bias, at + "in_bias", {2 * s.d_inner});
    expect(l.conv_weight, at + "conv_weight", {s.d_inner, 1, s.d_conv});
    expect(l.conv_bias, at + "conv_bias", {s.d_inner});
    expect(l.x_weight, at + "x_weight", {s.x_dbl(), s.d_inner});
    expect(l.dt_weight, at + "dt_weight", {s.d_inner, s.dt_rank});
    expect(l.dt_bias, at + "dt_bias", {s.d_inner});
    expect(l.A, at + "A", {s.d_inner, s.d_state});
    expect(l.D, at + "D", {s.d_inner});
    expect(l.out_weight, at + "out_weight", {s.d_model, s.d_inner});
    expect(l.out_bias, at + "out_bias", {s.d_model});
    MG_CHECK(l.conv_state.shape() == Shape({s.batch, s.d_inner, s.d_conv}) &&
                 l.ssm_state.shape() == Shape({s.batch, s.d_inner, s.d_state}),
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
