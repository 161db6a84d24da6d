// The rule for every path a gptqd command writes (issue 20): quantize's checkpoint, its
// `.creating` and `.lock` files, export's directory and each file in it, `layer --out`.
//
//   1. Never over an input: the output is not the same file (st_dev and st_ino, so hard links,
//      symbolic links and any spelling of the path count) as anything the command reads.
//   2. Never into an input: the output does not lie inside an input directory (the model
//      directory), at any depth, compared by identity along the resolved path.
//   3. Never through a symbolic link: an output path that is a symlink (lstat) is refused, even
//      one that points somewhere harmless; files are opened with O_NOFOLLOW or O_EXCL.
//   4. Never half-written: each file is written under a temporary name in its own directory and
//      renamed into place (staged_file.h), so a failed command leaves no partial file.
//
// The checks here run before any file is written and throw InputError: one line naming the
// role (the key or flag that chose the path), the path, and why.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace gptqd {

// An input of a command, named for messages: {"model file", "models/m/model.safetensors"},
// {"model directory", "models/m"}, {"job file", "job.yaml"}.
struct NamedInput {
  std::string what;
  std::string path;
};

// Every regular file directly inside `dir` (a model directory: config.json, the safetensors
// files and their index, tokenizer.json ...), each named "model file". Symbolic links to files
// (a Hugging Face cache snapshot) count, by their targets' identity.
std::vector<NamedInput> files_of_directory(const std::string& dir);

// The model directory itself ("model directory") and files_of_directory(dir).
std::vector<NamedInput> model_directory_inputs(const std::string& dir);

// Identity of a file (st_dev, st_ino, through symbolic links); exists false when stat fails.
struct FileIdentity {
  dev_t dev = 0;
  ino_t ino = 0;
  bool exists = false;
};
FileIdentity file_identity(const std::string& path);

// Throws InputError when the command may not write the file `path`: it is an input (rule 1),
// it lies inside an input directory (rule 2), it is a symbolic link (rule 3), or it exists and
// is not a regular file (a directory, a FIFO, a device). A path that does not exist yet is
// fine. `role` names who chose the path, e.g. "output.checkpoint" or "export --out". Inputs that
// do not exist are skipped (their own checks report them). A few stat calls; writes nothing.
void check_output_file(const std::string& role, const std::string& path,
                       const std::vector<NamedInput>& inputs);

// The same for a directory a command creates or writes files into (export --out): it may be
// absent or a directory; it is not an input, not inside an input directory, not a symbolic
// link.
void check_output_directory(const std::string& role, const std::string& dir,
                            const std::vector<NamedInput>& inputs);

// Throws InputError when `path` is a symbolic link (lstat). For the moment right before a
// library that opens files by name (HDF5) creates or opens `path` for writing.
void refuse_symlink(const std::string& role, const std::string& path);

// `path` as shown in a message: control characters escaped, cut after 200 bytes, so that an
// error stays one readable line.
std::string shown_path(const std::string& path);

}  // namespace gptqd
