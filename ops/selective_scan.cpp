// The selective scan op: input checks, dispatch to the CPU and CUDA kernels, and the backward node.
// The math is in ops/selective_scan.h; the fused CPU kernels and the adjoint recurrence in
// ops/cpu/selective_scan_{forward,backward}.cpp, the reference loop in
// ops/cpu/selective_scan_reference.cpp, the Blelloch scan in ops/cpu/parallel_scan.cpp, the GPU
// kernels in cuda/selective_scan.cu.
#include "ops/selective_scan.h"

#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/check.h"
#include "ops/cpu/parallel_scan.h"
#include "ops/cpu/selective_scan.h"
#include "ops/cpu/selective_scan_step.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

// The inputs, contiguous and detached: what the kernels read and what the backward saves.
struct ScanTensors {
  Tensor u, delta, A, Bm, Cm, D_skip, z, delta_bias, h0;
  bool delta_softplus = false, exact_zoh_b = false;
  cpu::ScanSizes size;
};

Tensor contiguous_data(const Tensor& t, DType dtype) {
  return t.defined() ? t.detach().to(dtype).contiguous() : Tensor();
}

void check_optional(const char* op, const char* name, const Tensor& t, const Shape& expected, const char* layout) {
  MG_CHECK(!t.defined() || t.shape() == expected, op, ": expected ", name, " of shape ", layout, " = ", expected,
           ", got ", t.shape());
}

// Checks shapes, dtypes and devices (every message names the op and the shapes) and returns the
// sizes. Bm, Cm may be (B, N, L) (one group) or (B, G, N, L).
cpu::ScanSizes check_inputs(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                            const Tensor& Cm, const SelectiveScanArgs& args) {
  MG_CHECK(u.defined() && delta.defined() && A.defined() && Bm.defined() && Cm.defined(), op,
           ": u, delta, A, Bm and Cm must be defined tensors");
  check_floating_inputs(op, {u, delta, A, Bm, Cm, args.D_skip, args.z, args.delta_bias, args.h0});
  MG_CHECK(u.dim() == 3, op, ": expected u of shape (B, D, L), got ", u.shape());
  const int64_t B = u.size(0), D = u.size(1), L = u.size(2);
  MG_CHECK(delta.shape() == u.shape(), op, ": expected delta of u's shape (B, D, L) = ", u.shape(), ", got ",
           delta.shape());
  MG_CHECK(A.dim() == 2 && A.size(0) == D, op, ": expected A of shape (D, N) with D = ", D, " (u ", u.shape(),
           "), got ", A.shape());
  const int64_t N = A.size(1);
  MG_CHECK(Bm.dim() == 3 || Bm.dim() == 4, op, ": expected Bm of shape (B, N, L) = ", Shape{B, N, L},
           " or (B, G, N, L), got ", Bm.shape());
  const int64_t G = Bm.dim() == 4 ? Bm.size(1) : 1;
  const Shape expected = Bm.dim() == 4 ? Shape{B, G, N, L} : Shape{B, N, L};
  MG_CHECK(Bm.shape() == expected, op, ": expected Bm of shape ", expected, " (B, D, L from u ", u.shape(),
           ", N from A ", A.shape(), "), got ", Bm.shape());
  MG_CHECK(G >= 1 && D % G == 0, op, ": D = ", D, " channels (u ", u.shape(), ") must be divisible by G = ", G,
           " groups (Bm ", Bm.shape(), ")");
  MG_CHECK(Cm.shape() == Bm.shape(), op, ": expected Cm of Bm's shape ", Bm.shape(), ", got ", Cm.shape());
  check_optional(op, "D_skip", args.D_skip, {D}, "(D)");
  check_optional(op, "z", args.z, {B, D, L}, "(B, D, L)");
  check_optional(op, "delta_bias", args.delta_bias, {D}, "(D)");
  check_optional(op, "h0", args.h0, {B, D, N}, "(B, D, N)");
  return {.batch = B, .dim = D, .dstate = N, .seqlen = L, .groups = G};
}

ScanTensors prepare(const char* op, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                    const Tensor& Cm, const SelectiveScanArgs& args, bool as_float64 = false) {
  ScanTensors s;
  s.size = check_inputs(op, u, delta, A, Bm, Cm, args);
  const DType dtype = as_float64 ? DType::Float64 : u.dtype();
  s.u = contiguous_data(u, dtype);
  s.delta = contiguous_data(delta, dtype);
  s.A = contiguous_data(A, dtype);
  s.Bm = contiguous_data(Bm, dtype);
  s.Cm = contiguous_data(Cm, dtype);
  s.D_skip = contiguous_data(args.D_skip, dtype);
  s.z = contiguous_data(args.z, dtype);
  s.delta_bias = contiguous_data(args.delta_bias, dtype);
  s.h0 = contiguous_data(args.h0, dtype);
  s.delta_softplus = args.delta_softplus;
  s.exact_zoh_b = args.exact_zoh_b;
  return s;
}

template <class T>
const T* data_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }
template <class T>
T* mutable_data_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

template <class T>
cpu::ScanInputs<T> kernel_inputs(const ScanTensors& s) {
  return {.size = s.size, .u = data_or_null<T>(s.u), .delta = data_or_null<T>(s.delta), .A = data_or_null<T>(s.A),
          .Bm = data_or_null<T>(s.Bm), .Cm = data_or_null<T>(s.Cm), .D_skip = data_or_null<T>(s.D_skip),
          .z = data_or_null<T>(s.z), .delta_bias = data_or_null<T>(s.delta_bias), .h0 = data_or_null<T>(s.h0),
          .delta_softplus = s.delta_softplus, .exact_zoh_b = s.exact_zoh_b};
}

SelectiveScanResult empty_outputs(const ScanTensors& s, DType dtype) {
  const cpu::ScanSizes& z = s.size;
  const TensorOptions options{.dtype = dtype, .device = s.u.device()};
  return {empty({z.batch, z.dim, z.seqlen}, options), empty({z.batch, z.dim, z.dstate}, options)};
}

bool on_gpu(const ScanTensors& s) { return s.u.device().is_cuda(); }

// Values of the forward's checkpoint buffer on the inputs' device (each device's kernels choose
// their own chunk length).
int64_t checkpoint_numel(const ScanTensors& s) {
  if (!on_gpu(s)) return cpu::scan_checkpoint_numel(s.size);
  int64_t numel = 0;
  MG_CUDA_DISPATCH(numel = cuda::selective_scan_checkpoint_numel(s.size));
  return numel;
}

Tensor empty_if(const Tensor& like) { return like.defined() ? empty_like(like) : Tensor(); }

// Gradients of all nine inputs through the adjoint recurrence (ops/cpu/selective_scan.cpp), the
// states recomputed from the forward's chunk checkpoints.
struct SelectiveScanBackward : Node {
  ScanTensors in;      // saved: every input (no copy: detached views of the caller's contiguous data)
  Tensor checkpoints;  // saved: (B, D, chunks, padded N), the state entering every chunk of 64 steps

  std::string name() const override { return "SelectiveScanBackward"; }
  void release_saved() override {
    in = ScanTensors{};
    checkpoints = Tensor();
  }
  // grads: dy (B, D, L) and dlast (B, D, N), either undefined when no gradient reached it.
  TensorList backward(const TensorList& grads) override {
    const Tensor dy = grads[0].defined() ? grads[0].contiguous() : Tensor();
    const Tensor dlast = grads[1].defined() ? grads[1].contiguous() : Tensor();
    TensorList d{empty_like(in.u),      empty_like(in.delta), empty_like(in.A),          empty_like(in.Bm),
                 empty_like(in.Cm),     empty_if(in.D_skip),  empty_if(in.z),            empty_if(in.delta_bias),
                 empty_if(in.h0)};
    Tensor workspace;  // the GPU kernels' partial sums (summed in a fixed order: deterministic)
    if (on_gpu(in)) {
      int64_t numel = 0;
      MG_CUDA_DISPATCH(numel = cuda::selective_scan_workspace_numel(in.size, in.u.dtype()));
      workspace = empty({numel}, {.dtype = in.u.dtype(), .device = in.u.device()});
    }
    dispatch_floating(in.u.dtype(), "selective_scan", [&]<class T>() {
      cpu::ScanGrads<T> g{mutable_data_or_null<T>(d[0]), mutable_data_or_null<T>(d[1]), mutable_data_or_null<T>(d[2]),
                          mutable_data_or_null<T>(d[3]), mutable_data_or_null<T>(d[4]), mutable_data_or_null<T>(d[5]),
                          mutable_data_or_null<T>(d[6]), mutable_data_or_null<T>(d[7]), mutable_data_or_null<T>(d[8])};
      if (on_gpu(in)) {
        MG_CUDA_DISPATCH(cuda::selective_scan_backward<T>(kernel_inputs<T>(in), checkpoints.data<T>(),
                                                          data_or_null<T>(dy), data_or_null<T>(dlast), g,
                                                          workspace.data<T>(), in.u.device().index));
      } else {
        cpu::selective_scan_backward_cpu<T>(kernel_inputs<T>(in), checkpoints.data<T>(), data_or_null<T>(dy),
                                            data_or_null<T>(dlast), g);
      }
    });
    for (size_t i = 0; i < d.size(); ++i)
      if (!next_edges[i].node) d[i] = Tensor();  // computed together, but nobody asked
    return d;
  }
};

}  // namespace

SelectiveScanResult selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                   const Tensor& Cm, const SelectiveScanArgs& args) {
  const TensorList inputs{u, delta, A, Bm, Cm, args.D_skip, args.z, args.delta_bias, args.h0};
  ScanTensors s = prepare("selective_scan", u, delta, A, Bm, Cm, args);
  SelectiveScanResult out = empty_outputs(s, u.dtype());
  const bool grad = needs_grad(inputs);
  Tensor checkpoints = grad ? empty({checkpoint_numel(s)}, {.dtype = u.dtype(), .device = u.device()}) : Tensor();
  dispatch_floating(u.dtype(), "selective_scan", [&]<class T>() {
    if (on_gpu(s)) {
      MG_CUDA_DISPATCH(cuda::selective_scan_forward<T>(kernel_inputs<T>(s), out.y.data<T>(), out.last_state.data<T>(),
                                                       mutable_data_or_null<T>(checkpoints), u.device().index));
    } else {
      cpu::selective_scan_forward_cpu<T>(kernel_inputs<T>(s), out.y.data<T>(), out.last_state.data<T>(),
                                         mutable_data_or_null<T>(checkpoints));
    }
  });
  if (grad) {
    auto node = std::make_shared<SelectiveScanBackward>();
    node->in = std::move(s);
    node->checkpoints = checkpoints;
    connect(node, inputs, {out.y, out.last_state});
  }
  return out;
}

SelectiveScanResult selective_scan_reference(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                             const Tensor& Cm, const SelectiveScanArgs& args) {
  MG_CHECK(u.device().is_cpu(), "selective_scan_reference: the float64 reference runs on the CPU; got u on ",
           u.device(), " (move the inputs with .to(Device::cpu()))");
  ScanTensors s = prepare("selective_scan_reference", u, delta, A, Bm, Cm, args, /*as_float64=*/true);
  SelectiveScanResult out = empty_outputs(s, DType::Float64);
  cpu::selective_scan_reference_cpu(kernel_inputs<double>(s), out.y.data<double>(), out.last_state.data<double>());
  return out;
}

SelectiveScanResult selective_scan_parallel(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                                            const Tensor& Cm, const SelectiveScanArgs& args) {
  MG_CHECK(u.device().is_cpu(), "selective_scan_parallel: the Blelloch scan runs on the CPU; got u on ", u.device(),
           " (move the inputs with .to(Device::cpu()))");
  ScanTensors s = prepare("selective_scan_parallel", u, delta, A, Bm, Cm, args, /*as_float64=*/true);
  SelectiveScanResult out = empty_outputs(s, DType::Float64);
  cpu::selective_scan_parallel_cpu(kernel_inputs<double>(s), out.y.data<double>(), out.last_state.data<double>());
  NoGradGuard no_grad;
  return {out.y.to(u.dtype()), out.last_state.to(u.dtype())};
}

// A step is a scan of length 1 whose initial and final state are both `state`. Mamba's hold runs
// a lean one-step kernel (ops/cpu/selective_scan_step.cpp: no chunks, checkpoints or lane padding,
// which would cost more than the step at batch 1); it agrees with the scan to rounding (tested).
Tensor selective_scan_step(Tensor& state, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& Bm,
                           const Tensor& Cm, const SelectiveScanArgs& args) {
  const char* op = "selective_scan_step";
  MG_CHECK(state.defined() && u.defined() && delta.defined() && Bm.defined() && Cm.defined(), op,
           ": state, u, delta, A, Bm and Cm must be defined tensors");
  MG_CHECK(!args.h0.defined(), op, ": pass the initial state as `state` (updated in place), not args.h0");
  MG_CHECK(u.dim() == 2 && delta.shape() == u.shape(), op, ": expected u and delta of shape (B, D), got u ",
           u.shape(), " and delta ", delta.shape());
  MG_CHECK(Bm.dim() == 2 || Bm.dim() == 3, op, ": expected Bm of shape (B, N) or (B, G, N), got ", Bm.shape());
  MG_CHECK(!args.z.defined() || args.z.shape() == u.shape(), op, ": expected z of u's shape ", u.shape(), ", got ",
           args.z.shape());
  MG_CHECK(state.dim() == 3 && state.size(0) == u.size(0) && state.size(1) == u.size(1) &&
               (!A.defined() || A.dim() != 2 || state.size(2) == A.size(1)),
           op, ": expected state of shape (B, D, N) (u ", u.shape(), ", A ", (A.defined() ? A.shape() : Shape{}),
           "), got ", state.shape());
  MG_CHECK(state.is_contiguous(), op, ": state must be contiguous (it is updated in place), got strides ",
           state.strides());
  MG_CHECK(!(grad_mode_enabled() && state.requires_grad()), op,
           ": cannot update a state that requires grad in place while grad mode is on (use NoGradGuard)");
  NoGradGuard no_grad;
  SelectiveScanArgs step_args = args;
  step_args.z = args.z.defined() ? args.z.unsqueeze(-1) : Tensor();
  step_args.h0 = state;
  ScanTensors s = prepare(op, u.unsqueeze(-1), delta.unsqueeze(-1), A, Bm.unsqueeze(-1), Cm.unsqueeze(-1), step_args);
  Tensor y = empty({s.size.batch, s.size.dim, 1}, {.dtype = u.dtype(), .device = u.device()});
  dispatch_floating(u.dtype(), op, [&]<class T>() {
    // Mamba's hold has a lean one-step kernel; the exact hold reuses the sequence kernel at L = 1.
    if (on_gpu(s)) MG_CUDA_DISPATCH(cuda::selective_scan_step<T>(kernel_inputs<T>(s), y.data<T>(), state.data<T>(),
                                                                  u.device().index));
    else if (!s.exact_zoh_b) cpu::selective_scan_step_cpu<T>(kernel_inputs<T>(s), y.data<T>(), state.data<T>());
    else cpu::selective_scan_forward_cpu<T>(kernel_inputs<T>(s), y.data<T>(), state.data<T>(), nullptr);
  });
  return y.view({s.size.batch, s.size.dim});
}

}  // namespace mg
