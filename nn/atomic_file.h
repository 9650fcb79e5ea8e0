#pragma once
// Writing a file so that a crash, a full disk or a failed write never destroys what was there:
// the bytes go to "<path>.tmp.<pid>" beside the target, are flushed and fsync'ed, and only then
// renamed over the target (rename is atomic on POSIX file systems). On any failure the temporary
// file is removed, the target is untouched, and mg::Error names the file and the problem.
#include <cstdio>
#include <string>
#include <string_view>

namespace mg::nn {

class AtomicFile {
 public:
  explicit AtomicFile(std::string target);  // creates the temporary file
  ~AtomicFile();                            // removes the temporary file unless committed
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // Flush, fsync, close, rename over the target, fsync the directory.
  void commit();

 private:
  std::string target_, temp_path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace mg::nn
