// A file written under a temporary name beside its final path and renamed into place (rule 4 of
// output_path.h): a reader never sees a half-written file, and a command that fails leaves
// nothing at the path, neither a partial file nor the temporary one.
#pragma once

#include <cstddef>
#include <string>

namespace gptqd {

class StagedFile {
 public:
  // Creates `<dir>/.<name>.gptqd-<pid>-<n>` in the directory of `path` with O_CREAT | O_EXCL |
  // O_NOFOLLOW (mode 0644 less the umask), so it never opens an existing file or a link.
  // InputError naming `role` and `path` when `path` is a symbolic link (refuse_symlink) or the
  // temporary file cannot be created.
  static StagedFile create(const std::string& role, const std::string& path);

  StagedFile() = default;
  StagedFile(StagedFile&& other) noexcept;
  StagedFile& operator=(StagedFile&& other) noexcept;
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  // Not committed: the temporary file is removed.
  ~StagedFile();

  // Appends [data, data + n); InputError naming the final path on failure (ENOSPC, EFBIG, EIO).
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  // Appends the whole content of the file `src` (read through links: it is an input).
  void copy_from(const std::string& src);
  // fsync and close; InputError naming the final path when either fails (a full disk, a quota
  // reported only at close on NFS). Idempotent.
  void finish();
  // finish(), then rename onto the final path and fsync its directory. A symbolic link at the
  // final path is refused again right before the rename.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  void discard() noexcept;
  std::string role_;
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool finished_ = false;
};

// Writes `text` to `path` through a StagedFile and commits it.
void write_file_atomically(const std::string& role, const std::string& path,
                           const std::string& text);

}  // namespace gptqd
