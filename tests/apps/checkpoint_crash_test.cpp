// Checkpoints survive a crash at any moment: a child process (tests/apps/checkpoint_writer.cpp)
// saves checkpoints in a loop and is killed with SIGKILL at random moments, a few hundred times:
// after 0, 1 or 2 saves it reports complete, plus a random time up to one save's duration
// (during its start-up, its next save's checksums, writes, fsync or rename). A save's duration is
// measured from the writer's reports (at least 15 ms), so that the kills also land mid-write in a
// slow build (AddressSanitizer's saves take several times longer). After every kill the last complete checkpoint
// loads, holds one save's values throughout (every tensor equals its step), includes every save
// the child reported, and at most one temporary file (the write the kill interrupted) is left.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
  int64_t last_step = 0, reported = 0;
  int interrupted_writes = 0;
  const int kills = 300;
  int64_t save_us = 15000;  // the longest time between two reported saves seen so far
  for (int round = 0; round < kills; ++round) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);  // its "save done" bytes
    posix_spawn_file_actions_addclose(&actions, pipe_fds[0]);
    pid_t pid = 0;
    const int spawned = posix_spawn(&pid, argv[0], &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    ASSERT_EQ(spawned, 0) << "cannot start " << writer;
    const int64_t saves = gen.next_int(0, 3);
    auto previous = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < saves; ++s) {
      char done = 0;
      ASSERT_EQ(::read(pipe_fds[0], &done, 1), 1) << "round " << round << ": the writer ended before saving";
      const auto now = std::chrono::steady_clock::now();
      if (s > 0)
        save_us = std::max<int64_t>(save_us, std::chrono::duration_cast<std::chrono::microseconds>(now - previous).count());
      previous = now;
    }
    reported += saves;
    std::this_thread::sleep_for(std::chrono::microseconds(gen.next_int(0, save_us)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer ended by itself (status " << status << ") in round " << round;

    const size_t temps = temp_files_beside(path);
    ASSERT_LE(temps, 1u) << "round " << round << ": temporary files pile up";
    interrupted_writes += static_cast<int>(temps);
    if (!fs::exists(path)) {
      ASSERT_EQ(reported, 0) << "round " << round << ": the checkpoint disappeared";
      continue;  // killed before its first save
    }
    LoadedCheckpoint c;
    ASSERT_NO_THROW(c = load_checkpoint(target)) << "round " << round;
    ASSERT_TRUE(holds_one_save(c)) << "round " << round;
    // Each writer continues from the checkpoint it finds, so the step counts every save that
    // completed; the ones reported must all be there.
    ASSERT_GE(c.info.step, last_step + saves) << "round " << round << ": a reported save was lost";
    last_step = c.info.step;
  }
  std::printf("%d kills: %d interrupted a write; the checkpoints reached step %ld (%ld saves reported; a save took "
              "up to %ld us)\n", kills, interrupted_writes, static_cast<long>(last_step), static_cast<long>(reported),
              static_cast<long>(save_us));
  EXPECT_GT(interrupted_writes, 0) << "no kill landed mid-write: the test did not test that case";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace mg::apps
