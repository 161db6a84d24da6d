// The metadata half of the checkpoint format: names and paths, and writing / reading the layout
// (groups, datasets, attributes). io-internal; see docs/checkpoint-format.md for the format.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <string>

#include "base/check.h"
#include "io/checkpoint/checkpoint_layout.h"

namespace gptqd::ckpt {

// Dataset names, one table so the writer, the reader and the docs agree.
inline constexpr const char* kCodes = "codes";
inline constexpr const char* kScales = "scales";
inline constexpr const char* kZeros = "zeros";
inline constexpr const char* kGIdx = "g_idx";
inline constexpr const char* kPerm = "perm";
inline constexpr const char* kBias = "bias";
inline constexpr const char* kComplete = "complete";
inline constexpr const char* kStats = "stats";
// Mixtures of experts (family "moe") only, int64 [n_blocks, n_layers]: the calibration tokens
// a routed expert's layer saw (over all replicas); -1 for other layers and until written.
inline constexpr const char* kTokens = "tokens";
inline constexpr const char* kChecksum = "checksum";  // format_version >= 2 (checkpoint_checksum.h)
// Root dataset, uint64 [n_blocks + 1]: the digest of the weights each block (and, last, the
// embedding) was quantized from; 0 = not known. Files made before it have none.
inline constexpr const char* kWeightsDigest = "weights_digest";

std::string run_path(const std::string& run);  // "/runs/<run>"
std::string layer_path(const std::string& run, int64_t block, const std::string& layer);

// Runs a reader on a file that opened: any gptqd::Error from the HDF5 layer (an attribute or
// dataset missing, of the wrong type or shape) is damage, rethrown as InputError naming the
// file, so every command ends in one line that says so. InputError passes through.
template <typename F>
auto as_damage(const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const InputError&) {
    throw;
  } catch (const Error& e) {
    throw InputError(fmt::format("checkpoint {} is damaged: {}", path, e.what()));
  }
}

// Creates every group, dataset and attribute of `layout` in an empty file. In a file opened with
// the MPI-IO driver every rank must call it with the same layout (all of it is collective).
// Raw-data datasets are contiguous with space allocated now and never filled; "complete" starts
// at 0 and "stats" at NaN.
void write_layout(hid_t file, const CkptLayout& layout);

// Reads the layout back. Throws InputError naming `path` when the file is not a gptqd
// checkpoint, is of a newer format version, or lacks part of the layout.
CkptLayout read_layout(hid_t file, const std::string& path);

// The root attribute format_version of a file read_layout() accepted.
int64_t read_format_version(hid_t file, const std::string& path);

// The root attribute gptqd_version of a file read_layout() accepted.
std::string read_writer_version(hid_t file, const std::string& path);

}  // namespace gptqd::ckpt
