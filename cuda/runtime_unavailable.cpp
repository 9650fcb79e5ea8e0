// cuda/runtime.h in a build without CUDA: there is no GPU to ask about, so every control says so.
#ifndef MG_WITH_CUDA
#include "cuda/runtime.h"

#include "tensor/error.h"

namespace mg::cuda {

namespace {
[[noreturn]] void unavailable(const char* what) {
  throw Error(str("cuda: ", what, " needs CUDA, but mambagrad was built without it (configure with -DMG_CUDA=ON)"));
}
}  // namespace

MemoryStats memory_stats(int) { unavailable("memory_stats"); }
void reset_peak_memory_stats(int) { unavailable("reset_peak_memory_stats"); }
void empty_cache(int) { unavailable("empty_cache"); }
void synchronize(int) { unavailable("synchronize"); }
void set_allow_tf32(bool) { unavailable("set_allow_tf32"); }
bool allow_tf32() { return false; }

Event::Event(int) { unavailable("Event"); }
Event::~Event() = default;
void Event::record() { unavailable("Event::record"); }
double Event::elapsed_ms(const Event&, const Event&) { unavailable("Event::elapsed_ms"); }

struct Graph::Impl {};
Graph::Graph() = default;
Graph::~Graph() = default;
Graph::Graph(Graph&&) noexcept = default;
Graph& Graph::operator=(Graph&&) noexcept = default;
void Graph::capture(Device, const std::function<void()>&) { unavailable("Graph::capture"); }
void Graph::replay() { unavailable("Graph::replay"); }
bool Graph::captured() const { return false; }

}  // namespace mg::cuda
#endif
