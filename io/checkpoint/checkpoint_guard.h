// Guards around the job's output file (issue 14): the checkpoint never replaces one of the
// job's inputs, two jobs never write one checkpoint at once, and a job whose checkpoint was
// replaced or removed while it ran never reports success.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace gptqd {

// An input of the job, named for messages: e.g. {"model file", "models/m/model.safetensors"}.
struct NamedInput {
  std::string what;
  std::string path;
};

// Throws InputError when `checkpoint`, `<checkpoint>.creating` or `<checkpoint>.lock` is the
// same file (st_dev and st_ino, so hard links, symlinks and `./` spellings all count) as any
// existing input, or when one of them is a directory. Inputs that do not exist are skipped
// (their own checks report them). Cheap: one stat per path.
void check_output_not_input(const std::string& checkpoint, const std::vector<NamedInput>& inputs);

// Every regular file directly inside `dir` (a model directory: config.json, the safetensors
// files and their index, tokenizer.json ...), each named "model file".
std::vector<NamedInput> files_of_directory(const std::string& dir);

// An exclusive lock on `<checkpoint>.lock` (flock), held by one process for the whole job;
// the file holds "pid <pid> on <host>" of the holder. Move-only; the destructor unlocks and
// removes the lock file.
class CheckpointLock {
 public:
  // Throws InputError when another process holds the lock, naming its pid and host and the
  // lock file. On a file system without flock (some NFS/Lustre mounts: ENOLCK, EOPNOTSUPP) it
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

// Identity of a file (st_dev, st_ino) to check, at the end of a job, that the path still names
// the file the job wrote.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool exists = false;
};
FileIdentity file_identity(const std::string& path);

// Throws InputError when `path` no longer names the file `at_start` identified (removed, or
// replaced by another job's create): the job's results are not in the file at that path.
void check_still_same_file(const std::string& path, const FileIdentity& at_start);

}  // namespace gptqd
