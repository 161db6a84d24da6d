#include "io/checkpoint/checkpoint_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "base/check.h"
#include "base/log.h"

namespace gptqd {
namespace {

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

}  // namespace

void check_output_not_input(const std::string& checkpoint, const std::vector<NamedInput>& inputs) {
  check_output_file("output.checkpoint", checkpoint, inputs);
  check_output_file("output.checkpoint's temporary file", checkpoint + ".creating", inputs);
  check_output_file("output.checkpoint's lock file", checkpoint + ".lock", inputs);
}

CheckpointLock CheckpointLock::acquire(const std::string& checkpoint) {
  CheckpointLock lock;
  const std::string path = checkpoint + ".lock";
  // The checkpoint's directory is created for it (as quantize does for the file itself), so
  // the lock can live beside it before the checkpoint exists.
  {
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(checkpoint).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    GPTQD_INPUT_CHECK(!ec, "output.checkpoint: cannot create the directory '{}': {}",
                      shown_path(parent.string()), ec.message());
  }
  // A holder removes the lock file when it ends; a file opened just before that removal is
  // locked by nobody else, so after locking, check that the path still names our file.
  for (int attempt = 0; attempt < 16; ++attempt) {
    // O_NOFOLLOW: a symbolic link planted at the lock's path would otherwise have its target
    // truncated and overwritten with the holder's text (issue 20).
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      if (err == ELOOP) refuse_symlink("output.checkpoint's lock file", path);
      throw InputError(fmt::format("output.checkpoint: cannot create the lock file '{}': {}",
                                   shown_path(path), std::strerror(err)));
    }
    {
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw InputError(
            fmt::format("output.checkpoint's lock file '{}' is not a regular file: remove it",
                        shown_path(path)));
      }
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK) {
        char buf[512] = {};
        const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' '))
          holder.pop_back();
        throw InputError(fmt::format(
            "output.checkpoint '{}' is in use by another gptqd job ({}; lock file '{}'): wait for "
            "it to end or choose another output.checkpoint",
            shown_path(checkpoint), shown_path(holder), shown_path(path)));
      }
      ::close(fd);
      if (err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS) {
        GPTQD_LOG_WARN(
            "cannot lock '{}' ({}): the file system has no flock; make sure no other job writes "
            "{}",
            shown_path(path), std::strerror(err), shown_path(checkpoint));
        return lock;
      }
      throw InputError(fmt::format("output.checkpoint: cannot lock '{}': {}", shown_path(path),
                                   std::strerror(err)));
    }
    struct stat mine {
    }, now{};
    if (::fstat(fd, &mine) == 0 && ::stat(path.c_str(), &now) == 0 && mine.st_dev == now.st_dev &&
        mine.st_ino == now.st_ino) {
      const std::string who = fmt::format("pid {} on {}\n", ::getpid(), host_name());
      if (::ftruncate(fd, 0) == 0) {
        [[maybe_unused]] const ssize_t w = ::pwrite(fd, who.data(), who.size(), 0);
      }
      lock.fd_ = fd;
      lock.path_ = path;
      return lock;
    }
    ::close(fd);  // removed by its previous holder meanwhile: take the new one
  }
  throw InputError(fmt::format("output.checkpoint: cannot lock '{}': it keeps being replaced",
                               shown_path(path)));
}

CheckpointLock::CheckpointLock(CheckpointLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

CheckpointLock& CheckpointLock::operator=(CheckpointLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

CheckpointLock::~CheckpointLock() { release(); }

void CheckpointLock::release() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still locked: see acquire()
  ::close(fd_);
  fd_ = -1;
}

void check_still_same_file(const std::string& path, const FileIdentity& at_start) {
  const FileIdentity now = file_identity(path);
  GPTQD_INPUT_CHECK(now.exists,
                    "checkpoint '{}' was removed while the job ran: its results are lost",
                    shown_path(path));
  GPTQD_INPUT_CHECK(now.dev == at_start.dev && now.ino == at_start.ino,
                    "checkpoint '{}' was replaced by another file while the job ran (another "
                    "job?): this job's results are not in it",
                    shown_path(path));
}

}  // namespace gptqd
