#pragma once
// A caching allocator for one device's memory (the idea of PyTorch's CUDACachingAllocator,
// written here). Getting memory from the driver is slow (cudaMalloc and cudaFree synchronize the
// device and cost ~0.1-1 ms) and a training step makes hundreds of tensors, so freed blocks stay
// here and serve later requests:
//   - sizes round up to 512 bytes; requests up to 1 MiB ("small") are carved from 2 MiB segments,
//     larger ones from segments of their own size rounded to 2 MiB (20 MiB for 1-10 MiB requests,
//     so that a layer's many mid-sized tensors share a few segments);
//   - a request takes the smallest free block that fits (best fit) and splits off the rest when
//     the rest is worth keeping; a freed block merges with free neighbours of its segment;
//   - a block is never handed out twice while in use, and stays in its pool: small blocks for
//     small requests, large for large (mixing them fragments the large segments);
//   - when the backend runs out of memory, every wholly free segment is released and the request
//     retried once; a second failure reports the request, the bytes in use and the bytes reserved.
// The work on a device goes to one stream (cuda/runtime.cu), so a block freed on the host can be
// reused at once: every later use of it is queued after every earlier one.
//
// Private pools: while a pool is active (CUDA graph capture), requests are served from and freed
// into that pool only, so memory a captured graph reads and writes is never handed to anyone else;
// the pool's segments go back to the device when the pool is released.
//
// The class knows nothing of CUDA: the backend is two functions, so the bookkeeping is tested on
// machines without a GPU (tests/cuda/caching_allocator_test.cpp).
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

namespace mg::cuda {

struct MemoryStats {
  int64_t allocated_bytes = 0;       // in blocks handed out now (rounded sizes)
  int64_t peak_allocated_bytes = 0;  // the most that was ever handed out at once (since reset)
  int64_t reserved_bytes = 0;        // held from the device: handed out + cached
  int64_t peak_reserved_bytes = 0;
  int64_t device_mallocs = 0;  // segments obtained from the device (cudaMalloc calls)
  int64_t device_frees = 0;    // segments given back (cudaFree calls)
  int64_t allocations = 0;     // requests served, from the cache or from a new segment
};

struct AllocatorBackend {
  // Returns nullptr when the device is out of memory; throws for any other failure.
  std::function<void*(size_t)> malloc;
  std::function<void(void*)> free;
};

class CachingAllocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallRequest = size_t{1} << 20;  // up to 1 MiB: the small pool
  static constexpr size_t kSmallSegment = size_t{2} << 20;
  static constexpr size_t kMediumRequest = size_t{10} << 20;  // 1-10 MiB share 20 MiB segments
  static constexpr size_t kMediumSegment = size_t{20} << 20;
  static constexpr size_t kSegmentRound = size_t{2} << 20;

  // `describe_device` names the device in errors ("cuda:0").
  CachingAllocator(AllocatorBackend backend, std::string describe_device);
  ~CachingAllocator();  // returns every segment to the backend
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least nbytes (nbytes 0 gets a minimal block). Throws mg::Error when the device
  // has no room even after releasing the cache; `what` (a tensor's shape and dtype, say) goes into
  // that message.
  void* allocate(size_t nbytes, const std::string& what = "");
  void free(void* ptr);  // a pointer from allocate(); nullptr is ignored

  // Releases every segment with nothing in use back to the device (the active private pool's too).
  void empty_cache();
  MemoryStats stats() const;
  void reset_peak_stats();

  // Private pools (see the top of the file). begin_pool() returns an id; until end_pool(), every
  // allocate/free of this allocator uses that pool. release_pool() returns the pool's segments
  // once none of its blocks is in use any more (at once if none is; else when the last is freed).
  int begin_pool();
  void end_pool();
  void release_pool(int id);

 private:
  struct Block;
  struct BySize {
    bool operator()(const Block* a, const Block* b) const;
  };
  using FreeSet = std::set<Block*, BySize>;
  struct Pool {
    FreeSet small, large;
    int64_t in_use = 0;  // blocks handed out
    bool released = false;
  };

  Block* find_free(Pool& pool, bool small, size_t size);
  Block* new_segment(bool small, size_t size, const std::string& what);  // for the active pool
  void release_free_segments(Pool& pool);
  void maybe_drop_pool(int id);
  Pool& pool_of(int id);

  AllocatorBackend backend_;
  std::string device_name_;
  mutable std::mutex mutex_;
  std::map<int, Pool> pools_;  // 0: the shared pool; others: private
  int active_pool_ = 0;
  int next_pool_ = 1;
  std::unordered_map<void*, Block*> in_use_;
  std::set<Block*> segments_;  // the first block of every segment
  MemoryStats stats_;
};

}  // namespace mg::cuda
