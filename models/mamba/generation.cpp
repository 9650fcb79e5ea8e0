// MambaLM's generation session: the prompt through the parallel forward (leaving the states
// after its last token), then one token at a time with the recurrent step. Its memory is the
// conv and SSM states of every layer: the same at every position.
#include "autograd/grad_mode.h"
#include "models/mamba/model.h"
#include "ops/view.h"

namespace mg::mamba {

namespace {

class MambaGeneration : public GenerationSession {
 public:
  MambaGeneration(MambaLM& model, int64_t batch) : model_(model), batch_(batch) {}

  Tensor feed(const Tensor& tokens) override {
    NoGradGuard no_grad;
    MG_CHECK(tokens.dim() == 2 && tokens.size(0) == batch_ && tokens.dtype() == DType::Int64,
             "Mamba generation: expected int64 tokens (", batch_, ", T), got ", tokens.shape(), " ", tokens.dtype());
    MG_CHECK(tokens.size(1) >= 1, "Mamba generation: feed at least one token");
    Tensor logits;
    if (position_ == 0) {  // the prompt, in parallel: (B, T, vocab) -> the last position's
      Tensor all = model_.forward(tokens, &state_);
      logits = contiguous(narrow(all, 1, all.size(1) - 1, 1).squeeze(1));
    } else {
      for (int64_t t = 0; t < tokens.size(1); ++t) logits = model_.step(contiguous(narrow(tokens, 1, t, 1).squeeze(1)), state_);
    }
    position_ += tokens.size(1);
    return logits;  // (B, vocab)
  }
  int64_t position() const override { return position_; }
  bool step_is_replayable() const override { return true; }  // MambaLM::step updates the state in place
  int64_t state_bytes() const override { return state_.state_bytes(); }

 private:
  MambaLM& model_;
  int64_t batch_;
  InferenceState state_;
  int64_t position_ = 0;
};

}  // namespace

int64_t InferenceState::state_bytes() const {
  int64_t bytes = 0;
  for (const MixerState& layer : layers)
    for (const Tensor& t : {layer.conv_state, layer.ssm_state})
      if (t.defined()) bytes += t.nbytes();
  return bytes;
}

std::unique_ptr<GenerationSession> MambaLM::start_generation(int64_t batch) {
  return std::make_unique<MambaGeneration>(*this, batch);
}

}  // namespace mg::mamba
