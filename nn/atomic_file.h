#pragma once
// Writing a file so that a crash, a full disk or a failed write never destroys what was there:
// the bytes go to "<path>.tmp.<pid>" beside the target, are flushed and fsync'ed, and only then
// renamed over the target (rename is atomic on POSIX file systems). On any failure the temporary
// file is removed, the target is untouched, and mg::Error names the file and the problem.
//
// A process killed while writing (SIGKILL, a power cut) cannot remove its temporary file, so the
// next write to the same target does: each writer holds an advisory lock (flock) on its
// temporary file, which the kernel releases when the process dies, and a new writer deletes
// every "<path>.tmp.*" it can lock. At most one temporary file is ever left: the one of the
// write in progress or of the last one killed.
#include <cstdio>
#include <string>
#include <string_view>

namespace mg::nn {

class AtomicFile {
 public:
  explicit AtomicFile(std::string target);  // removes stale temporary files, creates ours
  ~AtomicFile();                            // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // Flush, fsync, rename over the target, fsync the directory, close.
  void commit();

  const std::string& temp_path() const { return temp_path_; }

 private:
  [[noreturn]] void fail(const std::string& problem, int error);
  std::string target_, temp_path_;
  FILE* file_ = nullptr;  // holds the lock on the temporary file until closed
  bool committed_ = false;
};

void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace mg::nn
