// Checkpoints survive a crash at any moment: a child process (tests/apps/checkpoint_writer.cpp)
// saves checkpoints in a loop and is killed with SIGKILL at random moments, a few hundred times.
// After every kill the last complete checkpoint loads, holds one save's values throughout (every
// tensor equals its step), is never older than the one before, and at most one temporary file
// (the write the kill interrupted) is left beside it.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "apps/common/checkpoint.h"
#include "test_util.h"

#ifndef MG_CHECKPOINT_WRITER
#error "MG_CHECKPOINT_WRITER (the checkpoint_writer program's path) is set in tests/CMakeLists.txt"
#endif

namespace mg::apps {
namespace {

namespace fs = std::filesystem;

size_t temp_files_beside(const fs::path& target) {
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(target.parent_path()))
    n += entry.path().filename().string().rfind(target.filename().string() + ".tmp.", 0) == 0;
  return n;
}

// Every tensor of the checkpoint (model and optimizer moments) holds the checkpoint's step. (The
// optimizer's own step counters, "<name>.step", are not the writer's to set.)
::testing::AssertionResult holds_one_save(const LoadedCheckpoint& c) {
  for (const nn::StateDict* tensors : {&c.model, &c.optimizer})
    for (const auto& [name, t] : *tensors)
      for (double v : name.ends_with(".step") ? std::vector<double>{} : t.to_vector<double>())
        if (v != static_cast<double>(c.info.step))
          return ::testing::AssertionFailure() << name << " holds " << v << " in the checkpoint of step " << c.info.step;
  return ::testing::AssertionSuccess();
}

TEST(CheckpointCrash, SigkillAtRandomMomentsNeverLosesTheLastCheckpoint) {
  const fs::path dir = fs::temp_directory_path() / ("mambagrad_sigkill_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path path = dir / "checkpoint.safetensors";
  std::string writer = MG_CHECKPOINT_WRITER, target = path.string();
  char* argv[] = {writer.data(), target.data(), nullptr};

  Generator gen(2024);
  int64_t last_step = 0;
  int interrupted_writes = 0;
  const int kills = 300;
  for (int round = 0; round < kills; ++round) {
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ), 0) << "cannot start " << writer;
    std::this_thread::sleep_for(std::chrono::microseconds(gen.next_int(0, 40000)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer ended by itself (status " << status << ") in round " << round;

    const size_t temps = temp_files_beside(path);
    ASSERT_LE(temps, 1u) << "round " << round << ": temporary files pile up";
    interrupted_writes += static_cast<int>(temps);
    if (!fs::exists(path)) {
      ASSERT_EQ(last_step, 0) << "round " << round << ": the checkpoint disappeared";
      continue;  // killed before its first save
    }
    LoadedCheckpoint c;
    ASSERT_NO_THROW(c = load_checkpoint(target)) << "round " << round;
    ASSERT_TRUE(holds_one_save(c)) << "round " << round;
    ASSERT_GE(c.info.step, last_step) << "round " << round << ": an older checkpoint came back";
    last_step = c.info.step;
  }
  std::printf("%d kills: %d interrupted a write; the checkpoints reached step %ld\n", kills, interrupted_writes,
              static_cast<long>(last_step));
  EXPECT_GT(interrupted_writes, kills / 10) << "the kills should often land mid-write";
  EXPECT_GT(last_step, kills / 2) << "the writers should save often between kills";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mg::apps
