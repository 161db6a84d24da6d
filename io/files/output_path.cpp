#include "io/files/output_path.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <utility>

#include "base/check.h"

namespace gptqd {
namespace {

namespace fs = std::filesystem;

bool same(const FileIdentity& id, const struct stat& st) {
  return id.exists && id.dev == st.st_dev && id.ino == st.st_ino;
}

// Rule 1: `st` (the output, stat'ed through links) is none of the inputs.
void check_not_an_input(const std::string& role, const std::string& path, const struct stat& st,
                        const std::vector<NamedInput>& inputs) {
  for (const NamedInput& in : inputs) {
    GPTQD_INPUT_CHECK(!same(file_identity(in.path), st),
                      "{} '{}' is the {} '{}': gptqd never writes over an input; choose another "
                      "path",
                      role, shown_path(path), in.what, shown_path(in.path));
  }
}

// Rule 2: neither `start` (an existing directory, or the nearest existing ancestor of a path
// to be created) nor any directory above it is an input directory. The walk is over the
// resolved path, so `..` and symbolic links along the way lead where the kernel would go.
void check_not_inside_an_input(const std::string& role, const std::string& path, fs::path start,
                               const std::vector<NamedInput>& inputs) {
  std::vector<std::pair<const NamedInput*, FileIdentity>> dirs;
  for (const NamedInput& in : inputs) {
    struct stat st {};
    if (::stat(in.path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      dirs.emplace_back(&in, FileIdentity{st.st_dev, st.st_ino, true});
  }
  if (dirs.empty()) return;
  std::error_code ec;
  if (start.empty()) start = ".";
  while (!fs::exists(start, ec)) {
    const fs::path up = start.parent_path();
    if (up.empty() || up == start) {
      start = up.empty() ? fs::path(".") : up;
      break;
    }
    start = up;
  }
  const fs::path resolved = fs::canonical(start, ec);
  if (ec) return;  // unresolvable: creating the output fails and says why
  for (fs::path d = resolved;; d = d.parent_path()) {
    struct stat st {};
    if (::stat(d.c_str(), &st) == 0) {
      for (const auto& [in, id] : dirs) {
        GPTQD_INPUT_CHECK(!same(id, st),
                          "{} '{}' is inside the {} '{}': gptqd never writes into an input; "
                          "choose a path outside it",
                          role, shown_path(path), in->what, shown_path(in->path));
      }
    }
    if (d == d.parent_path() || d.empty()) break;
  }
}

// Rule 3: `path` (lstat'ed into `lst`) is no symbolic link.
void check_not_a_symlink(const std::string& role, const std::string& path, const struct stat& lst) {
  if (!S_ISLNK(lst.st_mode)) return;
  std::error_code ec;
  const fs::path target = fs::read_symlink(path, ec);
  throw InputError(fmt::format(
      "{} '{}' is a symbolic link (to '{}'): gptqd never writes through one; remove it or "
      "choose another path",
      role, shown_path(path), ec ? std::string("?") : shown_path(target.string())));
}

}  // namespace

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
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code ec2;
    if (it->is_regular_file(ec2)) out.push_back({"model file", it->path().string()});
  }
  return out;
}

std::vector<NamedInput> model_directory_inputs(const std::string& dir) {
  std::vector<NamedInput> out = {{"model directory", dir}};
  for (NamedInput& f : files_of_directory(dir)) out.push_back(std::move(f));
  return out;
}

void refuse_symlink(const std::string& role, const std::string& path) {
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0) check_not_a_symlink(role, path, lst);
}

void check_output_file(const std::string& role, const std::string& path,
                       const std::vector<NamedInput>& inputs) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) check_not_an_input(role, path, st, inputs);
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) == 0) {
    check_not_a_symlink(role, path, lst);
    GPTQD_INPUT_CHECK(!S_ISDIR(lst.st_mode), "{} '{}' is a directory; give a file path", role,
                      shown_path(path));
    GPTQD_INPUT_CHECK(S_ISREG(lst.st_mode),
                      "{} '{}' is not a regular file (a FIFO, socket or device): gptqd writes "
                      "regular files only",
                      role, shown_path(path));
  }
  check_not_inside_an_input(role, path, fs::path(path).parent_path(), inputs);
}

void check_output_directory(const std::string& role, const std::string& dir,
                            const std::vector<NamedInput>& inputs) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) check_not_an_input(role, dir, st, inputs);
  struct stat lst {};
  const bool exists = ::lstat(dir.c_str(), &lst) == 0;
  if (exists) {
    check_not_a_symlink(role, dir, lst);
    GPTQD_INPUT_CHECK(S_ISDIR(lst.st_mode), "{} '{}' exists and is not a directory", role,
                      shown_path(dir));
  }
  check_not_inside_an_input(role, dir, exists ? fs::path(dir) : fs::path(dir).parent_path(),
                            inputs);
}

}  // namespace gptqd
