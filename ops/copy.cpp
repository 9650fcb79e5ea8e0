// Copies: contiguous, clone, dtype casts, device transfers, and the in-place copy kernel they
// share. The gradient of a copy is the gradient itself, cast or moved back where needed.
#include "autograd/function.h"
#include "cuda/kernels.h"
#include "ops/binary.h"
#include "ops/check.h"
#include "ops/cpu/loops.h"
#include "ops/cpu/transpose_copy.h"
#include "ops/view.h"
#include "tensor/factory.h"

namespace mg {

namespace {

struct CloneBackward : Node {
  std::string name() const override { return "CloneBackward"; }
  TensorList backward(const TensorList& grads) override { return {grads[0]}; }
};

struct ToDtypeBackward : Node {
  DType input_dtype;
  std::string name() const override { return "ToDtypeBackward"; }
  TensorList backward(const TensorList& grads) override { return {to_dtype(grads[0], input_dtype)}; }
};

struct ToDeviceBackward : Node {
  Device input_device;
  std::string name() const override { return "ToDeviceBackward"; }
  TensorList backward(const TensorList& grads) override { return {to_device(grads[0], input_device)}; }
};

}  // namespace

void copy_inplace(Tensor& dst, const Tensor& src) {
  MG_CHECK(dst.device() == src.device(), "copy_inplace: destination on ", dst.device(), " but source on ",
           src.device(), "; use to(device)");
  MG_CHECK(broadcast_shapes(src.shape(), dst.shape(), "copy_inplace") == dst.shape(), "copy_inplace: source ",
           src.shape(), " does not broadcast to destination ", dst.shape());
  if (dst.device().is_cuda()) MG_CUDA_DISPATCH(return cuda::copy(dst, src));
  if (cpu::transpose_copy_cpu(dst, src)) return;
  dispatch_all(dst.dtype(), [&]<class Out>() {
    dispatch_all(src.dtype(), [&]<class In>() {
      cpu::unary_kernel<Out, In>(dst, src, [](In v) { return static_cast<Out>(v); });
    });
  });
}

Tensor clone(const Tensor& x) {
  Tensor out = empty_like(x);
  copy_inplace(out, x);
  if (needs_grad({x})) connect(std::make_shared<CloneBackward>(), {x}, {out});
  return out;
}

Tensor contiguous(const Tensor& x) { return x.is_contiguous() ? x : clone(x); }

Tensor to_dtype(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = empty(x.shape(), {.dtype = dtype, .device = x.device()});
  copy_inplace(out, x);
  if (is_floating(dtype) && needs_grad({x})) {
    auto node = std::make_shared<ToDtypeBackward>();
    node->input_dtype = x.dtype();
    connect(node, {x}, {out});
  }
  return out;
}

Tensor to_device(const Tensor& x, Device device) {
  if (x.device() == device) return x;
  Tensor source = x.is_contiguous() ? x : contiguous(x.detach());
  Tensor out = empty(x.shape(), {.dtype = x.dtype(), .device = device});
  copy_bytes(out.raw_data(), device, source.raw_data(), source.device(), out.nbytes());
  if (needs_grad({x})) {
    auto node = std::make_shared<ToDeviceBackward>();
    node->input_device = x.device();
    connect(node, {x}, {out});
  }
  return out;
}

// ---- Tensor's member forms
Tensor Tensor::to(Device device) const { return to_device(*this, device); }
Tensor Tensor::to(DType dtype) const { return to_dtype(*this, dtype); }
Tensor Tensor::contiguous() const { return mg::contiguous(*this); }
Tensor Tensor::clone() const { return mg::clone(*this); }

}  // namespace mg
