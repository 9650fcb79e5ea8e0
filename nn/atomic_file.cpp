#include "nn/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "tensor/error.h"

namespace mg::nn {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& problem) {
  throw Error(str("write ", path, ": ", problem, " (", std::strerror(errno), ")"));
}

// Makes the rename itself durable (best effort: some file systems refuse fsync on directories).
void sync_directory_of(const std::string& path) {
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  temp_path_ = str(target_, ".tmp.", ::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) fail(temp_path_, "cannot create the temporary file");
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  MG_ASSERT(file_ != nullptr, "write after commit");
  if (n > 0 && std::fwrite(data, 1, n, file_) != n) fail(temp_path_, "write failed");
}

void AtomicFile::commit() {
  MG_ASSERT(file_ != nullptr, "commit twice");
  if (std::fflush(file_) != 0) fail(temp_path_, "flush failed");
  if (::fsync(::fileno(file_)) != 0) fail(temp_path_, "fsync failed");
  FILE* f = std::exchange(file_, nullptr);
  if (std::fclose(f) != 0) fail(temp_path_, "close failed");
  if (std::rename(temp_path_.c_str(), target_.c_str()) != 0) fail(target_, "cannot rename the temporary file over it");
  committed_ = true;
  sync_directory_of(target_);
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace mg::nn
