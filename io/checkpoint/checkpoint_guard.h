// Guards around the job's output file (issues 14 and 20): the checkpoint, its `.creating` and its
// `.lock` follow the output rule of io/files/output_path.h (never over or into an input, never
// through a symbolic link), two jobs never write one checkpoint at once, and a job whose checkpoint
// was replaced or removed while it ran never reports success.
#pragma once

#include <string>
#include <vector>

#include "io/files/output_path.h"

namespace gptqd {

// Throws InputError when `checkpoint`, `<checkpoint>.creating` or `<checkpoint>.lock` breaks the
// output rule of io/files/output_path.h: it is the same file (st_dev and st_ino, so hard links,
// symlinks and `./` spellings all count) as an existing input, lies inside an input directory
// (the model directory), is a symbolic link, or is a directory or other non-regular file.
// Inputs that do not exist are skipped (their own checks report them). Cheap: a few stats.
void check_output_not_input(const std::string& checkpoint, const std::vector<NamedInput>& inputs);

// An exclusive lock on `<checkpoint>.lock` (flock), held by one process for the whole job;
// the file holds "pid <pid> on <host>" of the holder. Move-only; the destructor unlocks and
// removes the lock file.
class CheckpointLock {
 public:
  // Throws InputError when another process holds the lock, naming its pid and host and the
  // lock file, or when the lock file is a symbolic link (opened with O_NOFOLLOW) or not a
  // regular file. On a file system without flock (some NFS/Lustre mounts: ENOLCK, EOPNOTSUPP) it
  // logs a warning and holds nothing.
  static CheckpointLock acquire(const std::string& checkpoint);

  CheckpointLock() = default;
  CheckpointLock(CheckpointLock&& other) noexcept;
  CheckpointLock& operator=(CheckpointLock&& other) noexcept;
  CheckpointLock(const CheckpointLock&) = delete;
  CheckpointLock& operator=(const CheckpointLock&) = delete;
  ~CheckpointLock();

  bool held() const { return fd_ >= 0; }
  const std::string& path() const { return path_; }

 private:
  void release();
  int fd_ = -1;
  std::string path_;
};

// Throws InputError when `path` no longer names the file `at_start` identified (file_identity,
// taken when the job opened it): removed, or replaced by another job's create; the job's
// results are not in the file at that path.
void check_still_same_file(const std::string& path, const FileIdentity& at_start);

}  // namespace gptqd
