// checkpoint_writer PATH: saves training checkpoints to PATH in a loop until it is killed; the
// child of the SIGKILL test (tests/apps/checkpoint_crash_test.cpp). It continues from the step of
// the checkpoint already at PATH, and fills every tensor (the model's and the optimizer's moments)
// with the step number before each save, so a checkpoint that mixed two saves, or went back,
// would show. After each completed save it writes one byte to stdout (the test counts them).
#include <unistd.h>

#include <string>

#include "apps/common/checkpoint.h"
#include "models/mamba/model.h"
#include "nn/optim/adamw.h"
#include "ops/binary.h"
#include "tensor/factory.h"

int main(int argc, char** argv) {
  return mg::run_main([&] {
    using namespace mg;
    MG_CHECK(argc == 2, "usage: checkpoint_writer PATH");
    const std::string path = argv[1];
    mamba::MambaConfig config;  // 2 blocks of width 64: ~1.5 MB with the optimizer's moments
    config.d_model = 64;
    config.n_layer = 2;
    std::string vocabulary;
    for (int i = 0; i < config.vocab_size; ++i) vocabulary.push_back(static_cast<char>(' ' + i));
    Generator gen(0);
    mamba::MambaLM model(config, gen);
    optim::AdamW optimizer({{.params = model.named_parameters()}});
    Tensor loss = model.loss(ones({1, 4}, {.dtype = DType::Int64}), zeros({1, 4}, {.dtype = DType::Int64}));
    loss.backward();
    optimizer.step();  // creates the optimizer's state

    int64_t step = 0;
    try {
      step = apps::load_checkpoint(path).info.step;
    } catch (const Error&) {  // none yet
    }
    for (;;) {
      ++step;
      for (const nn::StateDict& tensors : {model.state_dict(), optimizer.state_dict()})
        for (const auto& [name, t] : tensors) {
          Tensor target = t.detach();
          copy_inplace(target, full(t.shape(), static_cast<double>(step), {.dtype = t.dtype()}));
        }
      apps::CheckpointInfo info;  // the model's kind and config are taken from the model
      info.vocabulary = vocabulary, info.step = step, info.rng_state = gen.state(), info.train_options = "{}";
      apps::save_checkpoint(path, model, &optimizer, info);
      if (::write(STDOUT_FILENO, ".", 1) != 1) return 1;  // the test has gone
    }
    return 0;
  });
}
