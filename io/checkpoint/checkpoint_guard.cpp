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

// Paths echoed in messages are cut and escaped so that an error stays one readable line.
std::string shown_path(const std::string& path) {
  constexpr size_t kMax = 200;
  std::string out;
  for (char c : path) {
    if (out.size() >= kMax) return out + "...";
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

std::string host_name() {
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) != 0) return "unknown-host";
  return name;
}

}  // namespace

FileIdentity file_identity(const std::string& path) {
  struct stat st {};
  FileIdentity id;
  if (::stat(path.c_str(), &st) != 0) return id;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.exists = true;
  return id;
}

std::vector<NamedInput> files_of_directory(const std::string& dir) {
  std::vector<NamedInput> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) out.push_back({"model file", it->path().string()});
  }
  return out;
}

void check_output_not_input(const std::string& checkpoint, const std::vector<NamedInput>& inputs) {
  const std::vector<std::pair<std::string, std::string>> outputs = {
      {"output.checkpoint", checkpoint},
      {"output.checkpoint's temporary file", checkpoint + ".creating"},
      {"output.checkpoint's lock file", checkpoint + ".lock"}};
  for (const auto& [role, path] : outputs) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;
    GPTQD_INPUT_CHECK(!S_ISDIR(st.st_mode),
                      "{} '{}' is a directory; give a file path, e.g. {}/job.h5", role,
                      shown_path(path), shown_path(path));
    for (const NamedInput& in : inputs) {
      const FileIdentity id = file_identity(in.path);
      GPTQD_INPUT_CHECK(!(id.exists && id.dev == st.st_dev && id.ino == st.st_ino),
                        "{} '{}' is the {} '{}': the job would overwrite its own input; choose "
                        "another output.checkpoint",
                        role, shown_path(path), in.what, shown_path(in.path));
    }
  }
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
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    GPTQD_INPUT_CHECK(fd >= 0, "output.checkpoint: cannot create the lock file '{}': {}",
                      shown_path(path), std::strerror(errno));
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
