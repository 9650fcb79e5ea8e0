// The caching allocator's bookkeeping (cuda/caching_allocator.h), with a fake device: runs on
// every machine. The fake hands out host memory and counts calls, and can be told how many bytes
// the "device" holds, to provoke out-of-memory.
#include <cstdlib>
#include <set>

#include "cuda/caching_allocator.h"
#include "test_util.h"

namespace mg::cuda {
namespace {

constexpr size_t MiB = size_t{1} << 20;

struct FakeDevice {
  size_t capacity = SIZE_MAX;  // bytes the device can hold
  size_t used = 0;
  int mallocs = 0, frees = 0;
  std::map<void*, size_t> live;

  AllocatorBackend backend() {
    return {.malloc = [this](size_t n) -> void* {
              if (used + n > capacity) return nullptr;
              void* p = std::malloc(n);
              live[p] = n;
              used += n;
              ++mallocs;
              return p;
            },
            .free = [this](void* p) {
              used -= live.at(p);
              live.erase(p);
              std::free(p);
              ++frees;
            }};
  }
};

TEST(CachingAllocator, FreedBlocksServeLaterRequests) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  void* p = a.allocate(1000);
  a.free(p);
  void* q = a.allocate(900);  // rounds to the same 1024 bytes: the same block again
  EXPECT_EQ(p, q);
  EXPECT_EQ(device.mallocs, 1);
  EXPECT_EQ(a.stats().allocated_bytes, 1024);
  a.free(q);
  EXPECT_EQ(a.stats().allocated_bytes, 0);
  EXPECT_EQ(a.stats().reserved_bytes, static_cast<int64_t>(CachingAllocator::kSmallSegment));
}

TEST(CachingAllocator, SmallRequestsShareASegmentAndNeverOverlap) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  std::vector<char*> blocks;
  for (int i = 0; i < 15; ++i) blocks.push_back(static_cast<char*>(a.allocate(100 << 10)));  // 15 x 100 KiB < 2 MiB
  EXPECT_EQ(device.mallocs, 1);
  std::set<char*> sorted(blocks.begin(), blocks.end());
  char* previous_end = nullptr;
  for (char* b : sorted) {
    EXPECT_TRUE(previous_end == nullptr || b >= previous_end);
    previous_end = b + (100 << 10);
  }
  for (char* b : blocks) a.free(b);
  a.empty_cache();  // every block merged back into one: the segment goes back
  EXPECT_EQ(device.frees, 1);
  EXPECT_EQ(a.stats().reserved_bytes, 0);
}

TEST(CachingAllocator, NeighboursMergeWhicheverOrderTheyAreFreed) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  void* x = a.allocate(512 << 10);
  void* y = a.allocate(512 << 10);
  void* z = a.allocate(512 << 10);
  a.free(y);
  a.free(x);  // merges with y
  a.free(z);  // merges with x+y and the segment's unused tail
  void* whole = a.allocate(CachingAllocator::kSmallRequest);  // needs the merged run
  EXPECT_EQ(device.mallocs, 1);
  a.free(whole);
}

TEST(CachingAllocator, LargeRequestsSplitTheirSegmentOnlyForLargeRests) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  void* big = a.allocate(30 * MiB);
  EXPECT_EQ(a.stats().reserved_bytes, static_cast<int64_t>(30 * MiB));
  a.free(big);
  void* smaller = a.allocate(25 * MiB);  // best fit: the cached 30 MiB block, its 5 MiB rest split off
  EXPECT_EQ(smaller, big);
  void* rest = a.allocate(4 * MiB);  // fits the 5 MiB rest
  EXPECT_EQ(static_cast<char*>(rest), static_cast<char*>(big) + 25 * MiB);
  EXPECT_EQ(device.mallocs, 1);
  // Mid-sized requests (1-10 MiB) share 20 MiB segments.
  void* m1 = a.allocate(3 * MiB);
  void* m2 = a.allocate(3 * MiB);
  EXPECT_EQ(device.mallocs, 2);
  for (void* p : {smaller, rest, m1, m2}) a.free(p);
}

TEST(CachingAllocator, ASteadyLoopStopsAskingTheDevice) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  auto step = [&] {  // a "training step": the same sizes, allocated and freed in a nested pattern
    std::vector<void*> live;
    for (size_t n : {size_t{4096}, 3 * MiB, size_t{700} << 10, 40 * MiB, size_t{16}, 12 * MiB}) live.push_back(a.allocate(n));
    a.free(live[1]);
    live.push_back(a.allocate(2 * MiB));
    for (size_t i = 0; i < live.size(); ++i)
      if (i != 1) a.free(live[i]);
  };
  step();
  const int after_first = device.mallocs;
  for (int i = 0; i < 20; ++i) step();
  EXPECT_EQ(device.mallocs, after_first);
  EXPECT_EQ(a.stats().allocated_bytes, 0);
}

TEST(CachingAllocator, OutOfMemoryReleasesTheCacheThenNamesTheRequest) {
  FakeDevice device;
  device.capacity = 64 * MiB;
  CachingAllocator a(device.backend(), "fake:0");
  a.free(a.allocate(40 * MiB));  // cached, 40 MiB held
  void* p = a.allocate(50 * MiB);  // does not fit beside the cache: the cache goes, then it fits
  EXPECT_NE(p, nullptr);
  EXPECT_EQ(device.frees, 1);
  EXPECT_TRUE(test::throws_error([&] { a.allocate(20 * MiB, "tensor [5242880] float32"); }, "out of memory on fake:0",
                                 "tensor [5242880] float32"));
  try {
    a.allocate(20 * MiB);
  } catch (const OutOfMemoryError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("50 MiB in use"), std::string::npos) << message;
  }
  EXPECT_EQ(a.stats().allocated_bytes, static_cast<int64_t>(50 * MiB));  // the failures changed nothing
  a.free(p);
}

TEST(CachingAllocator, StatisticsTrackPeaksUntilReset) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  void* p = a.allocate(3 * MiB);
  void* q = a.allocate(5 * MiB);
  a.free(q);
  MemoryStats s = a.stats();
  EXPECT_EQ(s.allocated_bytes, static_cast<int64_t>(3 * MiB));
  EXPECT_EQ(s.peak_allocated_bytes, static_cast<int64_t>(8 * MiB));
  EXPECT_EQ(s.allocations, 2);
  EXPECT_EQ(s.device_mallocs, 1);
  a.reset_peak_stats();
  EXPECT_EQ(a.stats().peak_allocated_bytes, static_cast<int64_t>(3 * MiB));
  a.free(p);
}

TEST(CachingAllocator, APrivatePoolKeepsItsMemoryToItself) {
  FakeDevice device;
  CachingAllocator a(device.backend(), "fake:0");
  a.free(a.allocate(100 << 10));  // a cached block in the shared pool
  int pool = a.begin_pool();
  void* in_pool = a.allocate(100 << 10);
  EXPECT_EQ(device.mallocs, 2);  // a segment of the pool's own, not the shared cache
  void* scratch = a.allocate(200 << 10);
  a.free(scratch);  // freed during the capture: back to the pool, reused by the pool only
  void* again = a.allocate(200 << 10);
  EXPECT_EQ(again, scratch);
  a.end_pool();
  void* outside = a.allocate(200 << 10);
  EXPECT_NE(outside, scratch);  // the shared pool never sees the pool's blocks
  a.free(again);
  a.release_pool(pool);  // one block of the pool is still in use: its memory stays
  EXPECT_EQ(device.frees, 0);
  a.free(in_pool);  // the last one: the pool's segment goes back
  EXPECT_EQ(device.frees, 1);
  a.free(outside);
}

}  // namespace
}  // namespace mg::cuda
