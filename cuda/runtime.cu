// The CUDA runtime of mambagrad: per GPU one stream, one caching allocator, a ring of pinned
// staging buffers for copies from the host, and the record through which kernels report bad data.
// Implements tensor/device_backend.h (what tensor/ needs) and cuda/runtime.h (the public controls).
//
// Why one non-blocking stream per GPU rather than the legacy default stream: work on it never
// waits for unrelated work of other libraries, and CUDA graphs can only be captured from such a
// stream. Because every operation of a device goes to its stream, freed memory can be reused at
// once and copies need no extra ordering.
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "tensor/device_backend.h"

namespace mg::cuda {

void prepare_cublas(int device);  // cuda/gemm.cu: creates the handle and its workspace

namespace {

constexpr int kMaxDevices = 64;
constexpr int kStagingSlots = 4;
constexpr size_t kStagingBytes = size_t{8} << 20;  // copies from the host go up in pieces of this

// A pinned host buffer that copies to the device go through, and the event that marks when the
// copy reading it has finished (so the buffer can be refilled).
struct StagingSlot {
  void* host = nullptr;
  size_t capacity = 0;
  cudaEvent_t done = nullptr;
};

struct DeviceRuntime {
  int device = 0;
  cudaStream_t stream = nullptr;
  std::unique_ptr<CachingAllocator> allocator;
  std::mutex staging_mutex;
  std::array<StagingSlot, kStagingSlots> staging;
  int next_slot = 0;
  DeviceErrorRecord* error_device = nullptr;  // written by kernels
  DeviceErrorRecord* error_host = nullptr;    // pinned: where the host reads it back
};

std::array<std::atomic<DeviceRuntime*>, kMaxDevices> g_runtimes{};
std::mutex g_runtimes_mutex;
std::atomic<bool> g_allow_tf32{false};

void check_device_index(int device) {
  MG_CHECK(device >= 0 && device < device_count(), "cuda: device cuda:", device, " does not exist (",
           device_count(), " GPU(s) visible)");
  MG_CHECK(device < kMaxDevices, "cuda: at most ", kMaxDevices, " GPUs are supported, asked for cuda:", device);
}

// Created at first use and never destroyed: destructors of statics run after the CUDA runtime has
// shut down, when freeing would fail. The driver reclaims everything at process exit.
DeviceRuntime& runtime(int device) {
  if (device >= 0 && device < kMaxDevices)
    if (DeviceRuntime* rt = g_runtimes[device].load(std::memory_order_acquire)) return *rt;
  check_device_index(device);
  std::lock_guard<std::mutex> lock(g_runtimes_mutex);
  if (DeviceRuntime* rt = g_runtimes[device].load(std::memory_order_acquire)) return *rt;
  DeviceGuard guard(device);
  auto* rt = new DeviceRuntime;
  rt->device = device;
  CUDA_CHECK(cudaStreamCreateWithFlags(&rt->stream, cudaStreamNonBlocking));
  AllocatorBackend backend{
      .malloc = [device](size_t nbytes) -> void* {
        DeviceGuard g(device);
        void* ptr = nullptr;
        cudaError_t err = cudaMalloc(&ptr, nbytes);
        if (err == cudaErrorMemoryAllocation) {
          (void)cudaGetLastError();
          return nullptr;
        }
        CUDA_CHECK(err);
        return ptr;
      },
      .free = [device](void* ptr) {
        DeviceGuard g(device);
        CUDA_CHECK(cudaFree(ptr));
      }};
  rt->allocator = std::make_unique<CachingAllocator>(std::move(backend), str("cuda:", device));
  CUDA_CHECK(cudaMalloc(&rt->error_device, sizeof(DeviceErrorRecord)));
  CUDA_CHECK(cudaMemsetAsync(rt->error_device, 0, sizeof(DeviceErrorRecord), rt->stream));
  CUDA_CHECK(cudaMallocHost(&rt->error_host, sizeof(DeviceErrorRecord)));
  std::memset(rt->error_host, 0, sizeof(DeviceErrorRecord));
  for (StagingSlot& slot : rt->staging) CUDA_CHECK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
  if (const char* tf32 = std::getenv("MG_ALLOW_TF32"); tf32 && std::strcmp(tf32, "1") == 0) g_allow_tf32 = true;
  g_runtimes[device].store(rt, std::memory_order_release);
  return *rt;
}

int current_device() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

bool is_capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

// The message for an error a kernel recorded (see DeviceErrorCode).
std::string describe(const DeviceErrorRecord& e, int device) {
  const std::string where = str(" (found on cuda:", device, " by a kernel; reported at the next wait for the GPU)");
  switch (e.code) {
    case kEmbeddingIndexOutOfRange:
      return str("embedding: index ", e.value, " at position ", e.position, " is out of range for ", e.limit,
                 " embeddings", where);
    case kIndexSelectOutOfRange:
      return str("index_select: index ", e.value, " at position ", e.position, " is out of range for a dimension of size ",
                 e.limit, where);
    case kCrossEntropyTargetOutOfRange:
      return str("cross_entropy: target ", e.value, " at position ", e.position, " is outside [0, ", e.limit, ")", where);
    default:
      return str("cuda: a kernel reported error code ", e.code, where);
  }
}

// Waits for the stream, then raises what kernels recorded since the last wait (and clears it).
void wait_and_check(DeviceRuntime& rt) {
  CUDA_CHECK(cudaMemcpyAsync(rt.error_host, rt.error_device, sizeof(DeviceErrorRecord), cudaMemcpyDeviceToHost,
                             rt.stream));
  CUDA_CHECK(cudaStreamSynchronize(rt.stream));
  if (rt.error_host->code == kNoDeviceError) return;
  DeviceErrorRecord found = *rt.error_host;
  std::memset(rt.error_host, 0, sizeof(DeviceErrorRecord));
  CUDA_CHECK(cudaMemsetAsync(rt.error_device, 0, sizeof(DeviceErrorRecord), rt.stream));
  throw Error(describe(found, rt.device));
}

}  // namespace

// ---- tensor/device_backend.h

int device_count() {
  // Asked once: the answer does not change while the process runs. A machine without a driver or
  // GPU makes cudaGetDeviceCount fail (cudaErrorNoDevice, cudaErrorInsufficientDriver, ...);
  // that means "no GPU here", not an error, so the CPU-only paths keep working.
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

void* device_malloc(size_t nbytes, int device) { return runtime(device).allocator->allocate(nbytes); }

void device_free(void* ptr, int device) noexcept {
  if (!ptr) return;
  try {
    runtime(device).allocator->free(ptr);
  } catch (...) {  // runs in destructors: nothing useful can be done with a failure here
  }
}

void memcpy_host_to_device(void* dst, const void* src, size_t nbytes, int device) {
  DeviceRuntime& rt = runtime(device);
  DeviceGuard guard(device);
  MG_CHECK(!is_capturing(rt.stream), "cuda: a copy from the host cannot be captured in a CUDA graph (copy the input "
           "into a tensor of fixed address before replay() instead)");
  // Pageable memory cannot be read by the GPU's copy engine directly: the bytes go through pinned
  // staging buffers, so the host returns as soon as they are staged and never waits for the GPU
  // (unless all slots are still being copied from: then it waits for the oldest).
  std::lock_guard<std::mutex> lock(rt.staging_mutex);
  const char* from = static_cast<const char*>(src);
  char* to = static_cast<char*>(dst);
  while (nbytes > 0) {
    size_t piece = std::min(nbytes, kStagingBytes);
    StagingSlot& slot = rt.staging[rt.next_slot];
    rt.next_slot = (rt.next_slot + 1) % kStagingSlots;
    CUDA_CHECK(cudaEventSynchronize(slot.done));  // the last copy out of this slot is done
    if (slot.capacity < piece) {
      if (slot.host) CUDA_CHECK(cudaFreeHost(slot.host));
      slot.host = nullptr;
      size_t capacity = std::max(piece, size_t{64} << 10);
      CUDA_CHECK(cudaMallocHost(&slot.host, capacity));
      slot.capacity = capacity;
    }
    std::memcpy(slot.host, from, piece);
    CUDA_CHECK(cudaMemcpyAsync(to, slot.host, piece, cudaMemcpyHostToDevice, rt.stream));
    CUDA_CHECK(cudaEventRecord(slot.done, rt.stream));
    from += piece;
    to += piece;
    nbytes -= piece;
  }
}

void memcpy_device_to_host(void* dst, const void* src, size_t nbytes, int device) {
  DeviceRuntime& rt = runtime(device);
  DeviceGuard guard(device);
  MG_CHECK(!is_capturing(rt.stream), "cuda: reading a value back to the host cannot be captured in a CUDA graph");
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, rt.stream));
  wait_and_check(rt);  // the one place a value comes back: the explicit wait
}

void memcpy_device_to_device(void* dst, int dst_device, const void* src, int src_device, size_t nbytes) {
  DeviceRuntime& rt = runtime(dst_device);
  DeviceGuard guard(dst_device);
  if (dst_device == src_device) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, rt.stream));
    return;
  }
  // Between GPUs: the source's pending work must be done first, and the source block must not be
  // reused before the copy has read it; waiting for both streams is the simple safe order (rare).
  DeviceRuntime& src_rt = runtime(src_device);
  {
    DeviceGuard src_guard(src_device);
    CUDA_CHECK(cudaStreamSynchronize(src_rt.stream));
  }
  CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, nbytes, rt.stream));
  CUDA_CHECK(cudaStreamSynchronize(rt.stream));
}

void memset_zero(void* ptr, size_t nbytes, int device) {
  DeviceRuntime& rt = runtime(device);
  DeviceGuard guard(device);
  CUDA_CHECK(cudaMemsetAsync(ptr, 0, nbytes, rt.stream));
}

// ---- cuda/launch.cuh

cudaStream_t current_stream() { return runtime(current_device()).stream; }
DeviceErrorRecord* device_error_record() { return runtime(current_device()).error_device; }

// ---- cuda/runtime.h

MemoryStats memory_stats(int device) { return runtime(device).allocator->stats(); }
void reset_peak_memory_stats(int device) { runtime(device).allocator->reset_peak_stats(); }

void empty_cache(int device) {
  DeviceRuntime& rt = runtime(device);
  DeviceGuard guard(device);
  CUDA_CHECK(cudaStreamSynchronize(rt.stream));  // cached blocks may still be read by queued work
  rt.allocator->empty_cache();
}

void synchronize(int device) {
  DeviceRuntime& rt = runtime(device);
  DeviceGuard guard(device);
  wait_and_check(rt);
}

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }

Event::Event(int device) : device_(device) {
  runtime(device);
  DeviceGuard guard(device);
  cudaEvent_t event = nullptr;
  CUDA_CHECK(cudaEventCreate(&event));
  event_ = event;
}

Event::~Event() {
  if (event_) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event_));
}

void Event::record() {
  DeviceGuard guard(device_);
  CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(event_), runtime(device_).stream));
}

double Event::elapsed_ms(const Event& start, const Event& end) {
  DeviceGuard guard(end.device_);
  CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(end.event_)));
  float ms = 0;
  CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start.event_), static_cast<cudaEvent_t>(end.event_)));
  return ms;
}

struct Graph::Impl {
  int device = -1;
  int pool = 0;
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;

  ~Impl() {
    if (device < 0) return;
    DeviceGuard guard(device);
    if (exec) (void)cudaGraphExecDestroy(exec);
    if (graph) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    // The pool's memory goes back once the tensors made during capture are gone too.
    if (pool) runtime(device).allocator->release_pool(pool);
  }
};

Graph::Graph() = default;
Graph::~Graph() = default;
Graph::Graph(Graph&&) noexcept = default;
Graph& Graph::operator=(Graph&&) noexcept = default;

bool Graph::captured() const { return impl_ && impl_->exec; }

void Graph::capture(Device device, const std::function<void()>& fn) {
  MG_CHECK(device.is_cuda(), "cuda::Graph: can only capture work on a GPU, got ", device);
  DeviceRuntime& rt = runtime(device.index);
  DeviceGuard guard(device.index);
  prepare_cublas(device.index);
  auto impl = std::make_unique<Impl>();
  impl->device = device.index;
  impl->pool = rt.allocator->begin_pool();
  // Relaxed: the allocator may still need cudaMalloc for a new segment of the private pool.
  CUDA_CHECK(cudaStreamBeginCapture(rt.stream, cudaStreamCaptureModeRelaxed));
  try {
    fn();
  } catch (...) {
    cudaGraph_t broken = nullptr;
    (void)cudaStreamEndCapture(rt.stream, &broken);
    if (broken) (void)cudaGraphDestroy(broken);
    (void)cudaGetLastError();
    rt.allocator->end_pool();
    throw;
  }
  rt.allocator->end_pool();
  CUDA_CHECK(cudaStreamEndCapture(rt.stream, &impl->graph));
  CUDA_CHECK(cudaGraphInstantiate(&impl->exec, impl->graph, 0));
  impl_ = std::move(impl);
}

void Graph::replay() {
  MG_CHECK(captured(), "cuda::Graph: replay() before capture()");
  DeviceRuntime& rt = runtime(impl_->device);
  DeviceGuard guard(impl_->device);
  CUDA_CHECK(cudaGraphLaunch(impl_->exec, rt.stream));
}

}  // namespace mg::cuda
