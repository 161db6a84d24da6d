#include "io/files/staged_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>

#include "base/check.h"
#include "io/files/output_path.h"

namespace gptqd {
namespace {

namespace fs = std::filesystem;

// fsync of a directory, so that a rename in it survives a crash; best effort (some file systems
// refuse to fsync a directory, and the data itself is already synced).
void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  [[maybe_unused]] const int rc = ::fsync(fd);
  ::close(fd);
}

std::string directory_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

StagedFile StagedFile::create(const std::string& role, const std::string& path) {
  refuse_symlink(role, path);
  static std::atomic<unsigned> counter{0};
  const fs::path final_path(path);
  const std::string name = final_path.filename().string();
  GPTQD_INPUT_CHECK(!name.empty() && name != "." && name != "..", "{} '{}' names no file", role,
                    shown_path(path));
  StagedFile f;
  f.role_ = role;
  f.path_ = path;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string tmp_name =
        fmt::format(".{}.gptqd-{}-{}", name, ::getpid(), counter.fetch_add(1));
    const fs::path tmp = final_path.parent_path() / tmp_name;
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) {
      f.tmp_ = tmp.string();
      f.fd_ = fd;
      return f;
    }
    if (errno != EEXIST) {
      throw InputError(
          fmt::format("{}: cannot write '{}': {}", role, shown_path(path), std::strerror(errno)));
    }
  }
  throw InputError(
      fmt::format("{}: cannot create a temporary file beside '{}'", role, shown_path(path)));
}

StagedFile::StagedFile(StagedFile&& other) noexcept
    : role_(std::move(other.role_)),
      path_(std::move(other.path_)),
      tmp_(std::exchange(other.tmp_, std::string())),
      fd_(std::exchange(other.fd_, -1)),
      finished_(other.finished_) {}

StagedFile& StagedFile::operator=(StagedFile&& other) noexcept {
  if (this != &other) {
    discard();
    role_ = std::move(other.role_);
    path_ = std::move(other.path_);
    tmp_ = std::exchange(other.tmp_, std::string());
    fd_ = std::exchange(other.fd_, -1);
    finished_ = other.finished_;
  }
  return *this;
}

StagedFile::~StagedFile() { discard(); }

void StagedFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
}

void StagedFile::write(const void* data, size_t n) {
  GPTQD_CHECK(fd_ >= 0 && !finished_, "StagedFile::write on {}: not open", path_);
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t{1} << 30);
    const ssize_t w = ::write(fd_, p, chunk);
    if (w < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      discard();
      throw InputError(
          fmt::format("{}: cannot write '{}': {}", role_, shown_path(path_), std::strerror(err)));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void StagedFile::copy_from(const std::string& src) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  GPTQD_INPUT_CHECK(in >= 0, "{}: cannot read '{}': {}", role_, shown_path(src),
                    std::strerror(errno));
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(in, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      ::close(in);
      throw InputError(
          fmt::format("{}: cannot read '{}': {}", role_, shown_path(src), std::strerror(err)));
    }
    if (r == 0) break;
    try {
      write(buf, static_cast<size_t>(r));
    } catch (...) {
      ::close(in);
      throw;
    }
  }
  ::close(in);
}

void StagedFile::finish() {
  if (finished_) return;
  GPTQD_CHECK(fd_ >= 0, "StagedFile::finish on {}: not open", path_);
  int err = ::fsync(fd_) == 0 ? 0 : errno;
  if (::close(fd_) != 0 && err == 0) err = errno;
  fd_ = -1;
  if (err != 0) {
    discard();
    throw InputError(
        fmt::format("{}: cannot write '{}': {}", role_, shown_path(path_), std::strerror(err)));
  }
  finished_ = true;
}

void StagedFile::commit() {
  finish();
  GPTQD_CHECK(!tmp_.empty(), "StagedFile::commit on {}: nothing staged", path_);
  refuse_symlink(role_, path_);
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    discard();
    throw InputError(fmt::format("{}: cannot rename '{}' to '{}': {}", role_, shown_path(tmp_),
                                 shown_path(path_), std::strerror(err)));
  }
  tmp_.clear();
  sync_directory(directory_of(path_));
}

void write_file_atomically(const std::string& role, const std::string& path,
                           const std::string& text) {
  StagedFile f = StagedFile::create(role, path);
  f.write(text);
  f.commit();
}

}  // namespace gptqd
