// The caching allocator's bookkeeping (see cuda/caching_allocator.h). Host code only: the device
// is reached through the two backend functions.
#include "cuda/caching_allocator.h"

#include <vector>

#include "tensor/error.h"

namespace mg::cuda {

namespace {

size_t round_up(size_t n, size_t multiple) { return (n + multiple - 1) / multiple * multiple; }

std::string mib(int64_t bytes) { return str(static_cast<double>(bytes) / (1 << 20), " MiB"); }

}  // namespace

// A run of bytes inside a segment. The blocks of a segment form a list in address order.
struct CachingAllocator::Block {
  char* ptr = nullptr;
  size_t size = 0;
  bool free = true;
  bool small = false;
  int pool = 0;
  size_t segment_size = 0;  // set on a segment's first block only
  Block* prev = nullptr;    // neighbours in the same segment
  Block* next = nullptr;
};

bool CachingAllocator::BySize::operator()(const Block* a, const Block* b) const {
  return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
}

CachingAllocator::CachingAllocator(AllocatorBackend backend, std::string describe_device)
    : backend_(std::move(backend)), device_name_(std::move(describe_device)) {
  pools_[0];
}

CachingAllocator::~CachingAllocator() {
  for (Block* head : segments_) {
    backend_.free(head->ptr);
    for (Block* b = head; b;) {
      Block* next = b->next;
      delete b;
      b = next;
    }
  }
}

CachingAllocator::Pool& CachingAllocator::pool_of(int id) {
  auto it = pools_.find(id);
  MG_ASSERT(it != pools_.end(), "caching allocator: no pool ", id);
  return it->second;
}

CachingAllocator::Block* CachingAllocator::find_free(Pool& pool, bool small, size_t size) {
  FreeSet& set = small ? pool.small : pool.large;
  Block key;
  key.size = size;
  auto it = set.lower_bound(&key);  // the smallest free block of at least `size` bytes
  if (it == set.end()) return nullptr;
  Block* block = *it;
  set.erase(it);
  return block;
}

CachingAllocator::Block* CachingAllocator::new_segment(bool small, size_t size, const std::string& what) {
  size_t segment = small ? kSmallSegment : size < kMediumRequest ? kMediumSegment : round_up(size, kSegmentRound);
  void* ptr = backend_.malloc(segment);
  if (!ptr) {  // out of memory: give the cache back and try once more
    release_free_segments(pools_.at(0));
    ptr = backend_.malloc(segment);
  }
  if (!ptr)
    throw OutOfMemoryError(str("cuda: out of memory on ", device_name_, " allocating ", mib(static_cast<int64_t>(size)),
                    what.empty() ? std::string() : " for " + what, " (a new segment of ", mib(segment), "); ",
                    mib(stats_.allocated_bytes), " in use by tensors, ", mib(stats_.reserved_bytes),
                    " reserved by the allocator"));
  auto* block = new Block{static_cast<char*>(ptr), segment, true, small, active_pool_, segment};
  segments_.insert(block);
  stats_.device_mallocs += 1;
  stats_.reserved_bytes += static_cast<int64_t>(segment);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  return block;
}

void* CachingAllocator::allocate(size_t nbytes, const std::string& what) {
  const size_t size = round_up(std::max<size_t>(nbytes, 1), kRound);
  const bool small = size <= kSmallRequest;
  std::lock_guard<std::mutex> lock(mutex_);
  Pool& pool = pool_of(active_pool_);
  Block* block = find_free(pool, small, size);
  if (!block) block = new_segment(small, size, what);  // for the active pool
  // Split off the rest when it is worth keeping: any rest in the small pool; over 1 MiB in the
  // large one (a smaller rest would only serve small requests, which never come to this pool).
  const size_t rest = block->size - size;
  if (small ? rest >= kRound : rest > kSmallRequest) {
    auto* tail = new Block{block->ptr + size, rest, true, small, block->pool, 0, block, block->next};
    if (block->next) block->next->prev = tail;
    block->next = tail;
    block->size = size;
    (small ? pool.small : pool.large).insert(tail);
  }
  block->free = false;
  in_use_[block->ptr] = block;
  pool.in_use += 1;
  stats_.allocations += 1;
  stats_.allocated_bytes += static_cast<int64_t>(block->size);
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  return block->ptr;
}

void CachingAllocator::free(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = in_use_.find(ptr);
  MG_ASSERT(it != in_use_.end(), "caching allocator: freeing a pointer it did not hand out");
  Block* block = it->second;
  in_use_.erase(it);
  stats_.allocated_bytes -= static_cast<int64_t>(block->size);
  Pool& pool = pool_of(block->pool);
  FreeSet& set = block->small ? pool.small : pool.large;
  block->free = true;
  // Merge with free neighbours: the block absorbs the next one, the previous one absorbs it.
  if (Block* next = block->next; next && next->free) {
    set.erase(next);
    block->size += next->size;
    block->next = next->next;
    if (next->next) next->next->prev = block;
    delete next;
  }
  if (Block* prev = block->prev; prev && prev->free) {
    set.erase(prev);
    prev->size += block->size;
    prev->next = block->next;
    if (block->next) block->next->prev = prev;
    delete block;
    block = prev;
  }
  set.insert(block);
  pool.in_use -= 1;
  if (pool.released) maybe_drop_pool(block->pool);
}

// Gives back every segment of `pool` that is one free block (nothing of it in use).
void CachingAllocator::release_free_segments(Pool& pool) {
  for (FreeSet* set : {&pool.small, &pool.large}) {
    std::vector<Block*> whole;
    for (Block* b : *set)
      if (!b->prev && !b->next) whole.push_back(b);
    for (Block* b : whole) {
      set->erase(b);
      segments_.erase(b);
      backend_.free(b->ptr);
      stats_.device_frees += 1;
      stats_.reserved_bytes -= static_cast<int64_t>(b->segment_size);
      delete b;
    }
  }
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_free_segments(pools_.at(0));
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak_stats() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

int CachingAllocator::begin_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  MG_CHECK(active_pool_ == 0, "cuda: a private memory pool is already active on ", device_name_,
           " (graph captures do not nest)");
  active_pool_ = next_pool_++;
  pools_[active_pool_];
  return active_pool_;
}

void CachingAllocator::end_pool() {
  std::lock_guard<std::mutex> lock(mutex_);
  active_pool_ = 0;
}

void CachingAllocator::release_pool(int id) {
  std::lock_guard<std::mutex> lock(mutex_);
  MG_CHECK(id != 0 && id != active_pool_, "cuda: pool ", id, " cannot be released now");
  if (pools_.find(id) == pools_.end()) return;
  pool_of(id).released = true;
  maybe_drop_pool(id);
}

void CachingAllocator::maybe_drop_pool(int id) {
  Pool& pool = pool_of(id);
  if (pool.in_use > 0) return;
  release_free_segments(pool);  // with nothing in use, every segment is one free block
  pools_.erase(id);
}

}  // namespace mg::cuda
