#include "autograd/grad_mode.h"

namespace mg {

namespace {
thread_local bool g_grad_mode_enabled = true;
}

bool grad_mode_enabled() { return g_grad_mode_enabled; }
void set_grad_mode_enabled(bool enabled) { g_grad_mode_enabled = enabled; }

}  // namespace mg
