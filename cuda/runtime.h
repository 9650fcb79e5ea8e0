#pragma once
// The CUDA backend's public controls: memory statistics and the cache, waiting for the GPU,
// TF32, and CUDA graphs. No CUDA types, so any code can include it. In a build without CUDA, or
// for a GPU that does not exist, each function throws mg::Error saying so.
//
// How work runs on a GPU: every kernel, cuBLAS call and copy of a device goes to one stream, in
// the order the host issued them; the host goes on without waiting. It waits only where a value
// comes back to it (Tensor::item, to_vector, a copy to the CPU) or at synchronize(). Memory comes
// from a caching allocator (cuda/caching_allocator.h): after the first training step, steps reuse
// cached blocks and never call cudaMalloc.
#include <functional>
#include <memory>

#include "cuda/caching_allocator.h"
#include "tensor/device.h"

namespace mg::cuda {

MemoryStats memory_stats(int device = 0);
void reset_peak_memory_stats(int device = 0);
// Gives cached blocks that hold no tensor back to the driver (other processes can then use them).
void empty_cache(int device = 0);

// Waits until the device has finished all the work queued so far. Also reports an error that a
// kernel found in the data meanwhile (an index out of range in embedding, index_select or
// cross_entropy: the GPU cannot throw, so the kernel records it and the host raises it here, or
// at the next copy to the host).
void synchronize(int device = 0);

// float32 matmuls on the tensor cores in TF32 (10-bit mantissa inputs): several times faster
// GEMMs, but products carry ~1e-3 relative error instead of float32's ~1e-7. Off by default, as
// in PyTorch; `mambagrad train --tf32` or MG_ALLOW_TF32=1 turns it on.
void set_allow_tf32(bool allow);
bool allow_tf32();

// A point in a GPU's stream, for timing GPU work (benchmarks): record() marks the point after all
// the work queued so far; elapsed_ms(start, end) waits until `end` is reached and returns the GPU
// time between the two marks.
class Event {
 public:
  explicit Event(int device = 0);
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record();
  static double elapsed_ms(const Event& start, const Event& end);

 private:
  void* event_ = nullptr;  // a cudaEvent_t
  int device_ = 0;
};

// Records the kernels that `fn` queues on a GPU into a CUDA graph, which replay() then runs
// again with a single launch (no per-kernel launch cost: what makes batch-1 generation fast).
//   - Tensors that fn reads from outside must keep their addresses between replays: allocate
//     them before capture() and update them in place (copy_inplace) before each replay().
//   - Tensors fn creates come from a private memory pool that the graph keeps while it lives, so
//     a tensor fn returns is refreshed by every replay().
//   - fn must not read a value back to the host, or synchronize, while it is captured.
//   - Run fn once normally before capturing it, so that every kernel it uses is loaded and every
//     library handle it needs exists (neither may happen during a capture).
// capture() only records: nothing runs until replay().
class Graph {
 public:
  Graph();
  ~Graph();
  Graph(Graph&&) noexcept;
  Graph& operator=(Graph&&) noexcept;

  void capture(Device device, const std::function<void()>& fn);
  void replay();
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mg::cuda
