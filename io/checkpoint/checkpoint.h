// The shared HDF5 checkpoint of a job (DESIGN.md section 6, docs/checkpoint-format.md).
//
// Parallel use: create() lays out the WHOLE file before any rank writes data (rank 0 writes it
// alone, every rank learns the outcome): every group, dataset and attribute,
// with all raw-data space allocated; open_resume() opens such a file collectively. After that no
// metadata ever changes; any rank writes its layers' raw data with independent MPI-IO and then
// marks the block complete in a pre-created completion dataset. A rank killed at any moment leaves
// a file that opens, whose completion map lists exactly the blocks whose data was fully written.
//
// Durability: write_layer() returns when the data was handed to the OS (MPI-IO pwrite; no HDF5
// raw-data cache is involved for contiguous datasets with the MPI-IO driver). mark_complete()
// fsyncs the file, writes the mark, and fsyncs again, so the mark never reaches stable storage
// before the data it vouches for, even if the node itself goes down.
//
// Not thread-safe: one thread per process uses a Checkpoint (the HDF5 build is not thread-safe).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint/checkpoint_inspect.h"
#include "io/checkpoint/checkpoint_layout.h"

namespace gptqd {

inline constexpr const char* kCheckpointFormat = "gptqd-checkpoint";
// 2: a checksum per layer (io/checkpoint/checkpoint_checksum.h), XXH64. 3: the same checksums
// with XXH3_64bits, the faster hash of the same library. Version 1 files are still read (and
// resumed) without checksums, version 2 files with XXH64: a file keeps the version it was created
// with, so a resume writes the hash its other blocks hold.
inline constexpr int kCheckpointFormatVersion = 3;
// 4: version 3 plus block kinds (CkptLayout::kind_layers: a block holds only its kind's layers),
// written only for models whose blocks differ (an MoE model with dense-MLP blocks), so that a
// gptqd from before refuses such a file by its version instead of calling its blocks damaged.
// Every other file is still written as version 3. Checksums as in 3 (XXH3_64bits).
inline constexpr int kCheckpointBlockKindsFormatVersion = 4;
// The version a file of this layout is created with.
inline int format_version_of(const CkptLayout& layout) {
  return has_block_kinds(layout) ? kCheckpointBlockKindsFormatVersion : kCheckpointFormatVersion;
}

// Throws InputError naming `where` and the first bad value unless the layer's data is what a
// writer produces: codes <= 2^bits - 1, finite scales, zeros in [0, 2^bits - 1], g_idx
// in [0, groups), perm a permutation of [0, cols). read_layer applies it to complete blocks.
void check_layer_data(const LayerData& d, int bits, int64_t groups, int64_t rows, int64_t cols,
                      const std::string& where);

// Bytes of raw data the layout's blocks take when written (docs/checkpoint-format.md "Size"),
// of every block of every run, or of the blocks not marked complete in `done` (per run, as
// completion() returns it) when given.
uint64_t checkpoint_data_bytes(const CkptLayout& layout,
                               const std::vector<std::vector<uint8_t>>* done = nullptr);

// Bytes an unprivileged writer may still use on the file system holding `path` (statvfs of its
// directory); UINT64_MAX when it cannot be asked.
uint64_t free_bytes_for(const std::string& path);

class Checkpoint {
 public:
  // Collective over comm (rank 0 writes, all ranks throw the same error or none does). Creates
  // (truncates) `path` and the whole layout: every group, dataset
  // (early allocation, contiguous), attribute, and a completion dataset per run (uint8[n_blocks],
  // all 0). The file is complete (all metadata flushed and synced) when this returns on any rank.
  // Throws InputError when the file cannot be created (e.g. missing directory), Error when the
  // layout is invalid (validate_layout).
  static Checkpoint create(const std::string& path, const CkptLayout& layout, MPI_Comm comm);

  // Collective. Opens an existing checkpoint for resuming. Throws InputError (on every rank, after
  // closing the file collectively) when the file is missing, not a gptqd checkpoint, or made for a
  // different job (layout or fingerprint differ); the message says what differs and how to start
  // over. layout() then returns the file's layout (the stored config texts).
  static Checkpoint open_resume(const std::string& path, const CkptLayout& layout, MPI_Comm comm);

  // Serial, read-only, default (sec2) driver: inspect, export, eval, tests. Safe while a job is
  // still writing the file (its metadata never changes after create). Throws InputError if the
  // file is missing, not HDF5, not a gptqd checkpoint, or of a newer format version.
  static Checkpoint open_read(const std::string& path);

  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  // Closes like close(). For create/open_resume all ranks must destroy it; but while an exception
  // unwinds on a communicator of more than one rank it only releases memory and leaves the file
  // to the OS, since a collective close would wait forever for ranks that are not unwinding
  // (the top of each rank catches, logs and MPI_Aborts).
  ~Checkpoint();

  const CkptLayout& layout() const;
  const std::string& path() const;
  // The gptqd version that created the file (root attribute gptqd_version).
  const std::string& writer_version() const;
  // The file's format_version (1: no checksums; 2: a checksum per layer, XXH64; 3: XXH3_64bits).
  int64_t format_version() const;

  // Independent (any one rank, opened by create/open_resume): writes rows [row_begin, row_end)
  // of a layer. Sizes: codes (nr * cols), scales and zeros (groups * nr, group-major), bias (nr),
  // nr = row_end - row_begin. The writer with row_begin == 0 also writes g_idx and perm (cols
  // each) and the layer's stats; other writers' g_idx/perm/stats are ignored. Throws InputError
  // for an unknown run or layer or a block out of range, Error for wrong sizes or rows.
  void write_layer(const std::string& run, int64_t block, const std::string& layer,
                   int64_t row_begin, int64_t row_end, const LayerData& data);

  // Independent: marks the block complete. Call it after every rank's write_layer() of that block
  // has returned (e.g. after a barrier of the writers). The data is synced before the mark is
  // written, and the mark is synced before this returns.
  void mark_complete(const std::string& run, int64_t block);

  // Independent: fsync of what this process wrote. mark_complete() syncs its own node's pages;
  // writers of a block on other nodes call sync() before the barrier that precedes the mark.
  void sync();

  // [n_blocks], 1 for a complete block, 0 otherwise (any value other than 0 counts as 1).
  std::vector<uint8_t> completion(const std::string& run) const;

  // The layer's stats alone (NaN where never written), without reading its data.
  LayerStats read_stats(const std::string& run, int64_t block, const std::string& layer) const;

  // Mixtures of experts (family "moe"): the calibration tokens a routed expert's layer saw, over
  // all replicas (/runs/<run>/tokens). write_tokens is independent like write_layer (its row-0
  // writer calls it) and not covered by the checksums; read_tokens gives -1 for a layer that is
  // no expert, not written yet, or a file without the dataset (dense families).
  void write_tokens(const std::string& run, int64_t block, const std::string& layer,
                    int64_t tokens);
  int64_t read_tokens(const std::string& run, int64_t block, const std::string& layer) const;

  // The whole layer (rows [0, rows)) as stored, stats included. For a complete block checked
  // against its checksums (format_version >= 2) and with check_layer_data: InputError naming
  // run, block and layer on damaged data. Any failure to read an opened file is InputError too.
  LayerData read_layer(const std::string& run, int64_t block, const std::string& layer) const;

  // Checks every layer of the block as read_layer checks a complete block, whether or not it is
  // marked complete. Throws InputError on the first damage found.
  void verify_block(const std::string& run, int64_t block) const;

  // Independent (opened by create/open_resume): clears the block's completion mark, so that a
  // resumed job quantizes it again (a damaged block found on resume). Synced before it returns.
  void mark_incomplete(const std::string& run, int64_t block);

  // The root dataset weights_digest (docs/checkpoint-format.md): n_blocks + 1 values, value b the
  // digest of the original weights block b was quantized from (the same for every run), value
  // n_blocks that of the embedding the calibration inputs were embedded with; 0 where not known
  // yet. Every block marked complete in some run has its digest, written before the mark. Empty
  // when the file has no such dataset (made before gptqd recorded them).
  std::vector<uint64_t> weights_digests() const;
  bool has_weights_digests() const;
  // Independent (opened by create/open_resume): writes value `index` (0..n_blocks) of
  // weights_digest; not synced (mark_complete() syncs it with the block's data). Error when the
  // file has no weights_digest.
  void write_weights_digest(int64_t index, uint64_t digest);

  // Dequantized weights [rows, cols] from the file:
  // w[r][c] = scales[g_idx[c]][r] * (codes[r][c] - zeros[g_idx[c]][r]).
  // Throws InputError when a stored g_idx is outside [0, groups).
  std::vector<float> dequantize(const std::string& run, int64_t block,
                                const std::string& layer) const;

  // Independent (opened by create/open_resume), for a job that created the file and is failing:
  // removes it when no block of any run is marked complete and `path` still names this file, so
  // a job that fails before its first block leaves no checkpoint behind (a file holding a complete
  // block always stays: a rerun resumes it). Race-free with mark_complete() on any rank: a mark is
  // written under a shared flock of the file, and this reads the maps and unlinks under an
  // exclusive one, so a mark either counts or lands in the removed file after the failure. Where
  // the file system has no flock it keeps the file. Returns whether it removed it; never throws.
  bool discard_if_nothing_complete() noexcept;

  // Collective for create/open_resume. Closes the file; writes no metadata (a crash during a
  // metadata write could damage the file; completeness is the completion map). Idempotent.
  void close();

 private:
  struct Impl;
  explicit Checkpoint(std::unique_ptr<Impl> impl);
  // Collective: opens an existing checkpoint read-write through MPI-IO.
  static Checkpoint open_parallel(const std::string& path, MPI_Comm comm);
  void write_layer_rows(const std::string& run, int64_t block, const std::string& layer,
                        int64_t row_begin, int64_t row_end, const LayerData& data);
  LayerData read_layer_checked(const std::string& run, int64_t block, const std::string& layer,
                               bool check) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gptqd
