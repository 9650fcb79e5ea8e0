#include "nn/atomic_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "tensor/error.h"

namespace mg::nn {

namespace fs = std::filesystem;

namespace {

// Makes the rename itself durable (best effort: some file systems refuse fsync on directories).
void sync_directory_of(const std::string& path) {
  fs::path dir = fs::path(path).parent_path();
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// Deletes the "<target>.tmp.<pid>" files of writers that died: a live writer holds its file's
// lock, so a file we can lock belongs to nobody. (Best effort: a file we cannot open or remove
// stays, and the write goes on.)
void remove_stale_temp_files(const std::string& target) {
  const fs::path dir = fs::path(target).parent_path();
  const std::string prefix = fs::path(target).filename().string() + ".tmp.";
  std::error_code ec;
  for (fs::directory_iterator it(dir.empty() ? fs::path(".") : dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !all_digits(name.substr(prefix.size()))) continue;
    int fd = ::open(it->path().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::unlink(it->path().c_str());
    ::close(fd);
  }
}

// True if `path` still names the file open as `fd` (a sweeper may have removed it before we
// locked it).
bool still_named(int fd, const std::string& path) {
  struct stat open_file {}, named {};
  return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &named) == 0 && open_file.st_dev == named.st_dev &&
         open_file.st_ino == named.st_ino;
}

}  // namespace

void AtomicFile::fail(const std::string& problem, int error) {
  throw Error(str("write ", target_, ": ", problem, " (", std::strerror(error), "); ", target_,
                  " is left as it was"));
}

AtomicFile::AtomicFile(std::string target) : target_(std::move(target)) {
  temp_path_ = str(target_, ".tmp.", ::getpid());
  remove_stale_temp_files(target_);
  for (int attempt = 0; attempt < 3 && !file_; ++attempt) {
    int fd = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail(str("cannot create the temporary file ", temp_path_), errno);
    if (::flock(fd, LOCK_EX) != 0 || !still_named(fd, temp_path_)) {
      ::close(fd);  // removed by another writer's sweep between open and flock: make it again
      continue;
    }
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      int error = errno;
      ::close(fd);
      ::unlink(temp_path_.c_str());
      fail(str("cannot open the temporary file ", temp_path_), error);
    }
  }
  if (!file_) fail(str("cannot lock the temporary file ", temp_path_), EBUSY);
}

AtomicFile::~AtomicFile() {
  if (!committed_) std::remove(temp_path_.c_str());  // before closing: while we still hold the lock
  if (file_) std::fclose(file_);
}

void AtomicFile::write(const void* data, size_t n) {
  MG_ASSERT(file_ != nullptr && !committed_, "write after commit");
  if (n > 0 && std::fwrite(data, 1, n, file_) != n) fail("writing the temporary file failed", errno);
}

void AtomicFile::commit() {
  MG_ASSERT(file_ != nullptr && !committed_, "commit twice");
  if (std::fflush(file_) != 0) fail("writing the temporary file failed", errno);
  if (::fsync(::fileno(file_)) != 0) fail("syncing the temporary file to disk failed", errno);
  // Renamed while we hold the lock, so no sweep can take the file in between.
  if (std::rename(temp_path_.c_str(), target_.c_str()) != 0)
    fail("cannot rename the temporary file over it", errno);
  committed_ = true;
  sync_directory_of(target_);
  FILE* f = std::exchange(file_, nullptr);
  std::fclose(f);  // the data is on disk and renamed: a close error cannot lose it
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  AtomicFile file(path);
  file.write(bytes);
  file.commit();
}

}  // namespace mg::nn
