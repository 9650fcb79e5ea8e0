#pragma once
// Grad mode: while disabled (NoGradGuard), ops record no graph. Thread-local, like PyTorch's.
namespace mg {

bool grad_mode_enabled();
void set_grad_mode_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_mode_enabled()) { set_grad_mode_enabled(false); }
  ~NoGradGuard() { set_grad_mode_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace mg
