#include "io/checkpoint/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <utility>

#include "base/check.h"
#include "base/log.h"
#include "io/checkpoint/checkpoint_checksum.h"
#include "io/checkpoint/checkpoint_meta.h"
#include "io/checkpoint/hdf5_util.h"
#include "io/files/output_path.h"

namespace gptqd {

using h5::Hid;

namespace {

// One H5Dwrite/H5Dread moves at most this many bytes of codes: MPI-IO counts are int, and
// smaller pieces keep a single call from holding gigabytes in flight.
constexpr size_t kMaxIoBytes = size_t{1} << 30;
// Datasets of at least this size start on a multiple of it, so ranks writing different layers
// touch different file-system stripes/pages.
constexpr hsize_t kAlignment = hsize_t{1} << 20;

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void fsync_fd(int fd, const std::string& path, const char* when) {
  if (::fsync(fd) != 0)
    throw Error(
        fmt::format("checkpoint {}: fsync {} failed: {}", path, when, std::strerror(errno)));
}

// flock(fd, op), retried when a signal interrupts it; false when it fails (for instance on a file
// system without flock: ENOLCK, EOPNOTSUPP, ENOSYS).
bool flock_retry(int fd, int op) {
  int rc = 0;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc == 0;
}

// A shared flock of the checkpoint (fd; none for -1 or where the file system has no flock) for
// as long as it lives: held while a complete mark is written
// (Checkpoint::discard_if_nothing_complete).
class SharedMarkLock {
 public:
  explicit SharedMarkLock(int fd) : fd_(fd >= 0 && flock_retry(fd, LOCK_SH) ? fd : -1) {}
  ~SharedMarkLock() {
    if (fd_ >= 0) flock_retry(fd_, LOCK_UN);
  }
  SharedMarkLock(const SharedMarkLock&) = delete;
  SharedMarkLock& operator=(const SharedMarkLock&) = delete;

 private:
  int fd_;
};

// fsync of a path (and of its directory after a rename), via a fresh descriptor.
void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
  if (fd < 0)
    throw Error(
        fmt::format("checkpoint: cannot open {} to sync it: {}", path, std::strerror(errno)));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems cannot fsync a directory (EINVAL); the rename itself is still atomic.
  if (rc != 0 && !(directory && err == EINVAL))
    throw Error(fmt::format("checkpoint: fsync of {} failed: {}", path, std::strerror(err)));
}

// All ranks must lay out the same file: HDF5 metadata calls are collective and silently
// corrupt the file when ranks disagree. Compares a hash of everything create() writes.
void check_same_layout_on_all_ranks(const CkptLayout& layout, MPI_Comm comm) {
  std::string sig = fmt::format("{}|{}|{}|{}|{}|", layout.n_blocks, layout.model_config_json,
                                layout.job_config_yaml, layout.fingerprint, layout.layers.size());
  for (const auto& l : layout.layers) sig += fmt::format("{}:{}x{}|", l.name, l.rows, l.cols);
  for (const auto& k : layout.kind_layers) {
    for (int li : k) sig += fmt::format("{},", li);
    sig += "|";
  }
  for (int k : layout.block_kind) sig += fmt::format("{},", k);
  for (const auto& r : layout.runs)
    sig += fmt::format("{}:{}:{}:{}:{}:{}:{}:{}:{}:{}|", r.name, r.bits, r.group_size, r.sym,
                       r.act_order, r.static_groups, r.true_sequential, r.damp_percent,
                       r.block_size, r.mse_clip);
  const unsigned long long h = std::hash<std::string>{}(sig);
  unsigned long long lo = 0, hi = 0;
  MPI_Allreduce(&h, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm);
  MPI_Allreduce(&h, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm);
  GPTQD_CHECK(lo == hi, "ranks passed different layouts to Checkpoint::create");
}

// File access through MPI-IO on `comm`. Metadata is written collectively when flushed.
Hid mpio_fapl(MPI_Comm comm) {
  Hid fapl = h5::make_plist(H5P_FILE_ACCESS);
  h5::check(H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL), "H5Pset_fapl_mpio");
  h5::check(H5Pset_coll_metadata_write(fapl.get(), true), "H5Pset_coll_metadata_write");
  h5::check(H5Pset_alignment(fapl.get(), kAlignment, kAlignment), "H5Pset_alignment");
  return fapl;
}

// The root group keeps its attributes in dense storage (a fractal heap, file format 1.8 and
// later), where one attribute may exceed the 64 KiB of an object header message: the run names
// of a 4096-run sweep, or a long config text, do.
Hid large_attrs_fcpl() {
  Hid fcpl = h5::make_plist(H5P_FILE_CREATE);
  h5::check(H5Pset_attr_phase_change(fcpl.get(), 0, 0), "H5Pset_attr_phase_change");
  return fcpl;
}

// A full file system shows as an HDF5 / MPI-IO error chain that never says so. Called where a
// write failed: throws Error saying the file system holding `path` is full when less than
// `writing` bytes + 1 MiB are free there, and returns otherwise (the caller rethrows).
void throw_if_disk_full(const std::string& path, uint64_t writing, const std::string& when) {
  const uint64_t free = free_bytes_for(path);
  if (free < writing + (uint64_t{1} << 20))
    throw Error(
        fmt::format("checkpoint {}: no space left on the file system holding it ({} free) {}", path,
                    format_bytes(free), when));
}

void check_parent_dir(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  GPTQD_INPUT_CHECK(parent.empty() || std::filesystem::is_directory(parent, ec),
                    "cannot create checkpoint {}: directory {} does not exist", path,
                    parent.string());
}

void check_is_hdf5(const std::string& path) {
  std::error_code ec;
  GPTQD_INPUT_CHECK(std::filesystem::exists(path, ec), "checkpoint {} does not exist", path);
  GPTQD_INPUT_CHECK(std::filesystem::is_regular_file(path, ec), "checkpoint {} is not a file",
                    path);
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 < 0) h5::error_text();  // clear the stack
  GPTQD_INPUT_CHECK(is_hdf5 > 0, "{} is not an HDF5 file (not a gptqd checkpoint)", path);
}

void check_perm(const std::vector<int32_t>& perm, int64_t cols, const std::string& what) {
  std::vector<bool> seen(cols, false);
  for (int32_t p : perm) {
    GPTQD_CHECK(p >= 0 && p < cols && !seen[p], "{}: perm is not a permutation of 0..{}", what,
                cols - 1);
    seen[p] = true;
  }
}

}  // namespace

uint64_t checkpoint_data_bytes(const CkptLayout& layout,
                               const std::vector<std::vector<uint8_t>>* done) {
  uint64_t total = 0;
  for (size_t ri = 0; ri < layout.runs.size(); ++ri) {
    std::vector<uint64_t> per_layer;
    for (const CkptLayerShape& l : layout.layers) {
      const auto rows = static_cast<uint64_t>(l.rows), cols = static_cast<uint64_t>(l.cols);
      const auto groups = static_cast<uint64_t>(layout.runs[ri].groups(l.cols));
      // codes, scales + zeros, g_idx + perm, bias + checksum
      per_layer.push_back(rows * cols + 8 * groups * rows + 8 * cols + 12 * rows + 8);
    }
    const std::vector<uint8_t>* marks =
        done != nullptr && ri < done->size() ? &(*done)[ri] : nullptr;
    for (size_t b = 0; b < static_cast<size_t>(layout.n_blocks); ++b) {
      if (marks != nullptr && b < marks->size() && (*marks)[b] != 0) continue;
      for (int li : block_layers(layout, static_cast<int64_t>(b)))
        total += per_layer[static_cast<size_t>(li)];
    }
  }
  return total;
}

uint64_t free_bytes_for(const std::string& path) {
  // The nearest directory above `path` that exists (the job creates missing ones).
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  while (!dir.empty() && !std::filesystem::is_directory(dir, ec)) dir = dir.parent_path();
  struct statvfs st {};
  if (::statvfs(dir.empty() ? "." : dir.c_str(), &st) != 0)
    return std::numeric_limits<uint64_t>::max();
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

struct Checkpoint::Impl {
  std::string path;
  CkptLayout layout;
  std::string writer_version;
  int64_t format_version = kCheckpointFormatVersion;  // the file's; checksums from 2 on
  bool has_weights_digests = false;                   // the file has weights_digest
  Hid file;
  Hid dxpl;  // independent MPI-IO transfers; invalid (H5P_DEFAULT) when opened serially
  bool writable = false;
  int comm_size = 1;
  int sync_fd = -1;  // the same file, for fsync(): MPI_File_sync is collective, fsync is not

  ~Impl() {
    if (sync_fd >= 0) ::close(sync_fd);
  }
  hid_t xfer() const { return dxpl.valid() ? dxpl.get() : H5P_DEFAULT; }

  void check_open() const { GPTQD_CHECK(file.valid(), "checkpoint {} is closed", path); }
  void check_writable() const {
    check_open();
    GPTQD_CHECK(writable, "checkpoint {} was opened read-only", path);
  }
  int run(const std::string& name) const {
    const int i = run_index(layout, name);
    if (i < 0) {
      std::vector<std::string> names;
      for (const auto& r : layout.runs) names.push_back(r.name);
      throw InputError(
          fmt::format("checkpoint {} has no run '{}' (runs: {})", path, name, join(names)));
    }
    return i;
  }
  int layer(const std::string& name) const {
    const int i = layer_index(layout, name);
    if (i < 0) {
      std::vector<std::string> names;
      for (const auto& l : layout.layers) names.push_back(l.name);
      throw InputError(
          fmt::format("checkpoint {} has no layer '{}' (layers: {})", path, name, join(names)));
    }
    return i;
  }
  // Blocks of several kinds: block b must be of a kind that has layer li.
  void check_block_layer(int64_t block, int li) const {
    GPTQD_INPUT_CHECK(block_has_layer(layout, block, li),
                      "checkpoint {}: block {} has no layer '{}' (its kind has other layers)", path,
                      block, layout.layers[static_cast<size_t>(li)].name);
  }
  void check_block(int64_t block) const {
    GPTQD_INPUT_CHECK(block >= 0 && block < layout.n_blocks,
                      "checkpoint {}: block {} is out of range (the model has blocks 0..{})", path,
                      block, layout.n_blocks - 1);
  }
  // Opens a dataset of the layout, checking that its shape is the layout's.
  Hid dataset(const std::string& dpath, const std::vector<hsize_t>& dims) const {
    Hid d = h5::open_dataset(file.get(), dpath);
    GPTQD_INPUT_CHECK(h5::dataset_dims(d.get()) == dims,
                      "checkpoint {} is damaged: dataset {} does not have the layout's shape", path,
                      dpath);
    return d;
  }
  void sync(const char* when) const {
    if (sync_fd >= 0) fsync_fd(sync_fd, path, when);
  }
  // Sets the block's completion mark to `done` and syncs it. Order on stable storage: all data
  // of the block, then a complete mark.
  void write_mark(const std::string& run_name, int64_t block, bool done) const {
    check_writable();
    run(run_name);
    check_block(block);
    if (done) sync("before marking a block complete");
    const uint8_t value = done ? 1 : 0;
    Hid d = dataset(ckpt::run_path(run_name) + "/" + ckpt::kComplete,
                    {static_cast<hsize_t>(layout.n_blocks)});
    // A complete mark under a shared lock: discard_if_nothing_complete() never removes the file
    // between this mark and its own look at the maps (no lock where the file system has none).
    const SharedMarkLock lock(done ? sync_fd : -1);
    try {
      h5::write_slab(d.get(), H5T_NATIVE_UINT8, {static_cast<hsize_t>(block)}, {1}, &value, xfer());
    } catch (const h5::WriteFailure& e) {
      throw Error(fmt::format("checkpoint {}: cannot mark run {} block {} {}: {}", path, run_name,
                              block, done ? "complete" : "incomplete", e.reason()));
    }
    sync(done ? "after marking a block complete" : "after marking a block incomplete");
  }
};

Checkpoint::Checkpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&& o) noexcept {
  if (this != &o) {
    try {
      close();
    } catch (const std::exception& e) {
      GPTQD_LOG_ERROR("{}", e.what());
    }
    impl_ = std::move(o.impl_);
  }
  return *this;
}

Checkpoint::~Checkpoint() {
  if (!impl_) return;
  if (impl_->writable && impl_->comm_size > 1 && std::uncaught_exceptions() > 0) {
    // A collective close here would wait for ranks that are not unwinding. Leave the file to the
    // OS: everything vouched for by the completion map is already on disk.
    impl_->file.release();
    return;
  }
  try {
    close();
  } catch (const std::exception& e) {
    GPTQD_LOG_ERROR("{}", e.what());
  }
}

namespace {

// Writes the whole layout of a new checkpoint at `tmp`, from this process alone. A failure
// removes the half-made file and throws one line.
void create_layout_file(const std::string& tmp, const CkptLayout& layout) {
  try {
    // MPI-IO on this process alone: after a failed flush HDF5 still closes such a file cleanly
    // (with the sec2 driver a close that failed on a full disk left the file open, and the
    // library crashed closing it again in MPI_Finalize).
    Hid fapl = mpio_fapl(MPI_COMM_SELF);
    h5::check(H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18),
              "H5Pset_libver_bounds");
    const Hid fcpl = large_attrs_fcpl();
    Hid file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()), H5Fclose);
    GPTQD_INPUT_CHECK(file.valid(), "cannot create checkpoint {}: {}", tmp, h5::error_text());
    ckpt::write_layout(file.get(), layout);
    h5::check_write("H5Fflush", [&] { return H5Fflush(file.get(), H5F_SCOPE_GLOBAL); });
    file.close_checked("H5Fclose");
  } catch (const Error& e) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw_if_disk_full(tmp, 0, "while creating its layout; free space and run the job again");
    if (const auto* w = dynamic_cast<const h5::WriteFailure*>(&e))
      throw Error(fmt::format("checkpoint {}: cannot write its layout: {}", tmp, w->reason()));
    throw;
  } catch (const std::exception&) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
}

}  // namespace

Checkpoint Checkpoint::create(const std::string& path, const CkptLayout& layout, MPI_Comm comm) {
  h5::quiet_errors();
  validate_layout(layout);
  check_same_layout_on_all_ranks(layout, comm);
  check_parent_dir(path);
  int rank = 0;
  MPI_Comm_rank(comm, &rank);

  // The layout is built under a temporary name and renamed into place once complete and synced,
  // so a job killed during create leaves no half-made checkpoint at `path` to resume from.
  const std::string tmp = path + ".creating";
  // HDF5 opens by name and follows links: a symbolic link at either name would have its target
  // truncated and overwritten. lstat right before the create (the job checked both at its
  // start, check_output_not_input; this closes the gap since).
  refuse_symlink("output.checkpoint", path);
  refuse_symlink("output.checkpoint's temporary file", tmp);
  // Rank 0 alone writes the layout (MPI-IO on MPI_COMM_SELF), and every rank learns the
  // outcome. A collective create could hang: when the layout's flush failed on one rank only (a
  // full disk seen by one MPI-IO aggregator), the ranks left HDF5's collective close on
  // different paths. One writer also makes the layout of a very large job (tens of thousands of
  // expert layers) cheaper than collective metadata writes.
  enum Outcome : int { kOk = 0, kInput = 1, kOther = 2 };
  int outcome = kOk;
  char error[1024] = {0};
  if (rank == 0) {
    try {
      create_layout_file(tmp, layout);
      fsync_path(tmp, false);
      if (std::rename(tmp.c_str(), path.c_str()) != 0)
        throw Error(fmt::format("cannot rename {} to {}: {}", tmp, path, std::strerror(errno)));
      const auto dir = std::filesystem::path(path).parent_path();
      fsync_path(dir.empty() ? "." : dir.string(), true);
    } catch (const InputError& e) {
      outcome = kInput;
      std::snprintf(error, sizeof(error), "%s", e.what());
    } catch (const std::exception& e) {
      outcome = kOther;
      std::snprintf(error, sizeof(error), "%s", e.what());
    }
  }
  MPI_Bcast(&outcome, 1, MPI_INT, 0, comm);
  MPI_Bcast(error, sizeof(error), MPI_CHAR, 0, comm);
  if (outcome == kInput) throw InputError(error);
  if (outcome == kOther) throw Error(error);
  return open_parallel(path, comm);
}

Checkpoint Checkpoint::open_resume(const std::string& path, const CkptLayout& layout,
                                   MPI_Comm comm) {
  h5::quiet_errors();
  refuse_symlink("output.checkpoint", path);  // a resume writes into the file
  check_is_hdf5(path);
  Checkpoint ckpt = open_parallel(path, comm);
  const std::string diff = layout_difference(ckpt.layout(), layout);
  if (!diff.empty()) {
    ckpt.close();  // every rank sees the same file, so every rank closes and throws here
    throw InputError(fmt::format(
        "checkpoint {} was made for a different job: {}; to start over, delete it or set "
        "output.checkpoint to a new path",
        path, diff));
  }
  return ckpt;
}

Checkpoint Checkpoint::open_read(const std::string& path) {
  h5::quiet_errors();
  check_is_hdf5(path);
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  Hid fapl = h5::make_plist(H5P_FILE_ACCESS);
  h5::check(H5Pset_fapl_sec2(fapl.get()), "H5Pset_fapl_sec2");
  // Readers must work on file systems without flock (NFS, Lustre) and beside a running writer.
  h5::check(H5Pset_file_locking(fapl.get(), false, true), "H5Pset_file_locking");
  impl->file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  GPTQD_INPUT_CHECK(impl->file.valid(), "cannot open checkpoint {}: {}", path, h5::error_text());
  impl->layout = ckpt::read_layout(impl->file.get(), path);
  impl->writer_version = ckpt::read_writer_version(impl->file.get(), path);
  impl->format_version = ckpt::read_format_version(impl->file.get(), path);
  impl->has_weights_digests = h5::has_link(impl->file.get(), ckpt::kWeightsDigest);
  return Checkpoint(std::move(impl));
}

Checkpoint Checkpoint::open_parallel(const std::string& path, MPI_Comm comm) {
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->writable = true;
  MPI_Comm_size(comm, &impl->comm_size);
  Hid fapl = mpio_fapl(comm);
  impl->file = Hid(H5Fopen(path.c_str(), H5F_ACC_RDWR, fapl.get()), H5Fclose);
  GPTQD_INPUT_CHECK(impl->file.valid(), "cannot open checkpoint {} for writing: {}", path,
                    h5::error_text());
  // Every rank reads the same metadata, so a mismatch throws on every rank; the Impl's file
  // handle then closes collectively while unwinding.
  impl->layout = ckpt::read_layout(impl->file.get(), path);
  impl->writer_version = ckpt::read_writer_version(impl->file.get(), path);
  impl->format_version = ckpt::read_format_version(impl->file.get(), path);
  impl->has_weights_digests = h5::has_link(impl->file.get(), ckpt::kWeightsDigest);
  impl->dxpl = h5::make_plist(H5P_DATASET_XFER);
  h5::check(H5Pset_dxpl_mpio(impl->dxpl.get(), H5FD_MPIO_INDEPENDENT), "H5Pset_dxpl_mpio");
  impl->sync_fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  // Same outcome on every rank in practice (same file, same permissions).
  GPTQD_INPUT_CHECK(impl->sync_fd >= 0, "cannot open checkpoint {} for syncing: {}", path,
                    std::strerror(errno));
  return Checkpoint(std::move(impl));
}

const CkptLayout& Checkpoint::layout() const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  return impl_->layout;
}

const std::string& Checkpoint::path() const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  return impl_->path;
}

const std::string& Checkpoint::writer_version() const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  return impl_->writer_version;
}

int64_t Checkpoint::format_version() const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  return impl_->format_version;
}

void Checkpoint::write_layer(const std::string& run, int64_t block, const std::string& layer,
                             int64_t row_begin, int64_t row_end, const LayerData& data) {
  const auto where = [&] { return fmt::format("run {} block {} {}", run, block, layer); };
  try {
    write_layer_rows(run, block, layer, row_begin, row_end, data);
  } catch (const Error& e) {
    throw_if_disk_full(impl_->path,
                       data.codes.size() + 4 * (data.scales.size() + data.zeros.size()),
                       fmt::format("while writing {}; free space and resume (the blocks marked "
                                   "complete are kept)",
                                   where()));
    if (const auto* w = dynamic_cast<const h5::WriteFailure*>(&e))
      throw Error(
          fmt::format("checkpoint {}: cannot write {}: {}; resume once the file system "
                      "takes writes again (the blocks marked complete are kept)",
                      impl_->path, where(), w->reason()));
    throw;
  }
}

void Checkpoint::write_layer_rows(const std::string& run, int64_t block, const std::string& layer,
                                  int64_t row_begin, int64_t row_end, const LayerData& data) {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_writable();
  const int ri = im.run(run);
  const int li = im.layer(layer);
  im.check_block(block);
  im.check_block_layer(block, li);
  const CkptLayerShape& shape = im.layout.layers[li];
  const int64_t rows = shape.rows, cols = shape.cols;
  const int64_t groups = im.layout.runs[ri].groups(cols);
  const std::string base = ckpt::layer_path(run, block, layer);
  GPTQD_CHECK(0 <= row_begin && row_begin < row_end && row_end <= rows,
              "{}: rows [{}, {}) outside [0, {})", base, row_begin, row_end, rows);
  const int64_t nr = row_end - row_begin;
  GPTQD_CHECK(data.codes.size() == static_cast<size_t>(nr * cols),
              "{}: {} codes for {} rows x {} cols", base, data.codes.size(), nr, cols);
  GPTQD_CHECK(data.scales.size() == static_cast<size_t>(groups * nr) &&
                  data.zeros.size() == static_cast<size_t>(groups * nr),
              "{}: {} scales and {} zeros for {} groups x {} rows", base, data.scales.size(),
              data.zeros.size(), groups, nr);
  GPTQD_CHECK(data.bias.size() == static_cast<size_t>(nr), "{}: {} bias values for {} rows", base,
              data.bias.size(), nr);
  const bool first = row_begin == 0;
  if (first) {
    GPTQD_CHECK(data.g_idx.size() == static_cast<size_t>(cols) &&
                    data.perm.size() == static_cast<size_t>(cols),
                "{}: g_idx has {} and perm {} values for {} cols", base, data.g_idx.size(),
                data.perm.size(), cols);
    for (int32_t g : data.g_idx)
      GPTQD_CHECK(g >= 0 && g < groups, "{}: g_idx value {} outside [0, {})", base, g, groups);
    check_perm(data.perm, cols, base);
  }

  const hid_t x = im.xfer();
  const hsize_t rb = row_begin, hnr = nr, hcols = cols, hgroups = groups;
  {
    Hid d = im.dataset(base + "/" + ckpt::kCodes, {static_cast<hsize_t>(rows), hcols});
    const hsize_t step = std::max<hsize_t>(1, kMaxIoBytes / hcols);
    for (hsize_t r = 0; r < hnr; r += step) {
      const hsize_t n = std::min(step, hnr - r);
      h5::write_slab(d.get(), H5T_NATIVE_UINT8, {rb + r, 0}, {n, hcols},
                     data.codes.data() + r * hcols, x);
    }
  }
  // scales/zeros are [groups, rows]: a row range is one strided selection, which HDF5's MPI-IO
  // path writes piece by piece, without read-modify-write of the neighbours' rows.
  const std::vector<hsize_t> gr_dims = {hgroups, static_cast<hsize_t>(rows)};
  h5::write_slab(im.dataset(base + "/" + ckpt::kScales, gr_dims).get(), H5T_NATIVE_FLOAT, {0, rb},
                 {hgroups, hnr}, data.scales.data(), x);
  h5::write_slab(im.dataset(base + "/" + ckpt::kZeros, gr_dims).get(), H5T_NATIVE_FLOAT, {0, rb},
                 {hgroups, hnr}, data.zeros.data(), x);
  h5::write_slab(im.dataset(base + "/" + ckpt::kBias, {static_cast<hsize_t>(rows)}).get(),
                 H5T_NATIVE_FLOAT, {rb}, {hnr}, data.bias.data(), x);
  if (im.format_version >= 2) {
    // Each writer vouches for its own rows; the first also for g_idx, perm and stats (at index
    // rows, after every writer's rows).
    const Hid d = im.dataset(base + "/" + ckpt::kChecksum, {static_cast<hsize_t>(rows) + 1});
    const std::vector<uint64_t> sums = ckpt::row_checksums(ckpt::checksum_hash(im.format_version),
                                                           data, row_begin, nr, cols, groups);
    h5::write_slab(d.get(), H5T_NATIVE_UINT64, {rb}, {hnr}, sums.data(), x);
    if (first) {
      const uint64_t meta = ckpt::meta_checksum(ckpt::checksum_hash(im.format_version), data,
                                                im.layout.runs[ri], shape);
      h5::write_slab(d.get(), H5T_NATIVE_UINT64, {static_cast<hsize_t>(rows)}, {1}, &meta, x);
    }
  }
  if (first) {
    h5::write_slab(im.dataset(base + "/" + ckpt::kGIdx, {hcols}).get(), H5T_NATIVE_INT32, {}, {},
                   data.g_idx.data(), x);
    h5::write_slab(im.dataset(base + "/" + ckpt::kPerm, {hcols}).get(), H5T_NATIVE_INT32, {}, {},
                   data.perm.data(), x);
    const LayerStats& s = data.stats;
    const double row[kLayerStatsColumns] = {s.gptq_loss, s.gptq_err, s.rtn_err, s.seconds, s.damp};
    const std::vector<hsize_t> stats_dims = {static_cast<hsize_t>(im.layout.n_blocks),
                                             im.layout.layers.size(), kLayerStatsColumns};
    h5::write_slab(im.dataset(ckpt::run_path(run) + "/" + ckpt::kStats, stats_dims).get(),
                   H5T_NATIVE_DOUBLE, {static_cast<hsize_t>(block), static_cast<hsize_t>(li), 0},
                   {1, 1, kLayerStatsColumns}, row, x);
  }
}

void Checkpoint::mark_complete(const std::string& run, int64_t block) {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  impl_->write_mark(run, block, true);
}

void Checkpoint::sync() {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  impl_->check_writable();
  impl_->sync("on request");
}

std::vector<uint8_t> Checkpoint::completion(const std::string& run) const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_open();
  im.run(run);
  return ckpt::as_damage(im.path, [&] {
    // The dataset's shape is checked before anything is sized by the layout's n_blocks.
    Hid d = im.dataset(ckpt::run_path(run) + "/" + ckpt::kComplete,
                       {static_cast<hsize_t>(im.layout.n_blocks)});
    std::vector<uint8_t> out(im.layout.n_blocks);
    h5::read_slab(d.get(), H5T_NATIVE_UINT8, {}, {}, out.data(), im.xfer());
    for (auto& v : out) v = v != 0;
    return out;
  });
}

void Checkpoint::mark_incomplete(const std::string& run, int64_t block) {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  impl_->write_mark(run, block, false);
}

LayerStats Checkpoint::read_stats(const std::string& run, int64_t block,
                                  const std::string& layer) const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_open();
  im.run(run);
  const int li = im.layer(layer);
  im.check_block(block);
  im.check_block_layer(block, li);
  double row[kLayerStatsColumns] = {0};
  const std::vector<hsize_t> stats_dims = {static_cast<hsize_t>(im.layout.n_blocks),
                                           im.layout.layers.size(), kLayerStatsColumns};
  ckpt::as_damage(im.path, [&] {
    h5::read_slab(im.dataset(ckpt::run_path(run) + "/" + ckpt::kStats, stats_dims).get(),
                  H5T_NATIVE_DOUBLE, {static_cast<hsize_t>(block), static_cast<hsize_t>(li), 0},
                  {1, 1, kLayerStatsColumns}, row, im.xfer());
  });
  return {row[0], row[1], row[2], row[3], row[4]};
}

void Checkpoint::write_tokens(const std::string& run, int64_t block, const std::string& layer,
                              int64_t tokens) {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_writable();
  im.run(run);
  const int li = im.layer(layer);
  im.check_block(block);
  im.check_block_layer(block, li);
  const std::string dpath = ckpt::run_path(run) + "/" + ckpt::kTokens;
  GPTQD_CHECK(h5::has_link(im.file.get(), dpath.c_str()),
              "checkpoint {} has no {} (family {}): tokens of {} cannot be stored", im.path, dpath,
              im.layout.family, layer);
  const std::vector<hsize_t> dims = {static_cast<hsize_t>(im.layout.n_blocks),
                                     im.layout.layers.size()};
  h5::write_slab(im.dataset(dpath, dims).get(), H5T_NATIVE_INT64,
                 {static_cast<hsize_t>(block), static_cast<hsize_t>(li)}, {1, 1}, &tokens,
                 im.xfer());
}

int64_t Checkpoint::read_tokens(const std::string& run, int64_t block,
                                const std::string& layer) const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_open();
  im.run(run);
  const int li = im.layer(layer);
  im.check_block(block);
  im.check_block_layer(block, li);
  const std::string dpath = ckpt::run_path(run) + "/" + ckpt::kTokens;
  if (!h5::has_link(im.file.get(), dpath.c_str())) return -1;
  int64_t v = -1;
  const std::vector<hsize_t> dims = {static_cast<hsize_t>(im.layout.n_blocks),
                                     im.layout.layers.size()};
  ckpt::as_damage(im.path, [&] {
    h5::read_slab(im.dataset(dpath, dims).get(), H5T_NATIVE_INT64,
                  {static_cast<hsize_t>(block), static_cast<hsize_t>(li)}, {1, 1}, &v, im.xfer());
  });
  return v;
}

void check_layer_data(const LayerData& d, int bits, int64_t groups, int64_t rows, int64_t cols,
                      const std::string& where) {
  const int maxq = (1 << bits) - 1;
  for (size_t i = 0; i < d.codes.size(); ++i)
    GPTQD_INPUT_CHECK(d.codes[i] <= maxq,
                      "{}: code {} at [{}, {}] is above {} ({} bits); the checkpoint is damaged",
                      where, d.codes[i], static_cast<int64_t>(i) / cols,
                      static_cast<int64_t>(i) % cols, maxq, bits);
  for (size_t i = 0; i < d.scales.size(); ++i) {
    const float z = d.zeros[i];
    GPTQD_INPUT_CHECK(std::isfinite(d.scales[i]) && z >= 0 && z <= maxq,
                      "{}: group {} row {} has scale {} and zero {} (zeros are in [0, {}]); the "
                      "checkpoint is damaged",
                      where, static_cast<int64_t>(i) / rows, static_cast<int64_t>(i) % rows,
                      d.scales[i], z, maxq);
  }
  std::vector<uint8_t> seen(static_cast<size_t>(cols), 0);
  for (int64_t c = 0; c < cols; ++c) {
    const int32_t g = d.g_idx[static_cast<size_t>(c)], p = d.perm[static_cast<size_t>(c)];
    GPTQD_INPUT_CHECK(g >= 0 && g < groups,
                      "{}: g_idx[{}] = {} is outside [0, {}); the checkpoint is damaged", where, c,
                      g, groups);
    GPTQD_INPUT_CHECK(p >= 0 && p < cols && !seen[static_cast<size_t>(p)],
                      "{}: perm[{}] = {} is not a permutation of [0, {}); the checkpoint is "
                      "damaged",
                      where, c, p, cols);
    seen[static_cast<size_t>(p)] = 1;
  }
}

LayerData Checkpoint::read_layer(const std::string& run, int64_t block,
                                 const std::string& layer) const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  impl_->check_open();
  impl_->run(run);
  impl_->check_block(block);
  // A complete block's data must be what a writer produced: a damaged file must not spill a
  // code into its neighbour, index outside the scales or reorder columns at random.
  const bool complete = completion(run)[static_cast<size_t>(block)] != 0;
  return read_layer_checked(run, block, layer, complete);
}

void Checkpoint::verify_block(const std::string& run, int64_t block) const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  for (int li : block_layers(layout(), block))
    read_layer_checked(run, block, layout().layers[static_cast<size_t>(li)].name, true);
}

LayerData Checkpoint::read_layer_checked(const std::string& run, int64_t block,
                                         const std::string& layer, bool check) const {
  const Impl& im = *impl_;
  im.check_open();
  const int ri = im.run(run);
  const int li = im.layer(layer);
  im.check_block(block);
  im.check_block_layer(block, li);
  const CkptLayerShape& shape = im.layout.layers[li];
  const CkptRunSpec& spec = im.layout.runs[ri];
  const hsize_t rows = shape.rows, cols = shape.cols;
  const hsize_t groups = spec.groups(shape.cols);
  const std::string base = ckpt::layer_path(run, block, layer);
  const std::string where = fmt::format("{}: run {} block {} {}", im.path, run, block, layer);
  const hid_t x = im.xfer();
  return ckpt::as_damage(im.path, [&] {
    // Every dataset is opened and its shape checked before anything is allocated from the
    // layout's numbers.
    const Hid codes = im.dataset(base + "/" + ckpt::kCodes, {rows, cols});
    const Hid scales = im.dataset(base + "/" + ckpt::kScales, {groups, rows});
    const Hid zeros = im.dataset(base + "/" + ckpt::kZeros, {groups, rows});
    const Hid g_idx = im.dataset(base + "/" + ckpt::kGIdx, {cols});
    const Hid perm = im.dataset(base + "/" + ckpt::kPerm, {cols});
    const Hid bias = im.dataset(base + "/" + ckpt::kBias, {rows});
    const bool checksummed = im.format_version >= 2;
    Hid sums;
    if (checksummed) sums = im.dataset(base + "/" + ckpt::kChecksum, {rows + 1});
    LayerData out;
    out.codes.resize(rows * cols);
    const hsize_t step = std::max<hsize_t>(1, kMaxIoBytes / cols);
    for (hsize_t r = 0; r < rows; r += step) {
      const hsize_t n = std::min(step, rows - r);
      h5::read_slab(codes.get(), H5T_NATIVE_UINT8, {r, 0}, {n, cols}, out.codes.data() + r * cols,
                    x);
    }
    out.scales.resize(groups * rows);
    out.zeros.resize(groups * rows);
    out.g_idx.resize(cols);
    out.perm.resize(cols);
    out.bias.resize(rows);
    h5::read_slab(scales.get(), H5T_NATIVE_FLOAT, {}, {}, out.scales.data(), x);
    h5::read_slab(zeros.get(), H5T_NATIVE_FLOAT, {}, {}, out.zeros.data(), x);
    h5::read_slab(g_idx.get(), H5T_NATIVE_INT32, {}, {}, out.g_idx.data(), x);
    h5::read_slab(perm.get(), H5T_NATIVE_INT32, {}, {}, out.perm.data(), x);
    h5::read_slab(bias.get(), H5T_NATIVE_FLOAT, {}, {}, out.bias.data(), x);
    out.stats = read_stats(run, block, layer);
    if (!check) return out;
    if (checksummed) {
      std::vector<uint64_t> stored(rows + 1);
      h5::read_slab(sums.get(), H5T_NATIVE_UINT64, {}, {}, stored.data(), x);
      const std::string diff =
          ckpt::checksum_mismatch(ckpt::checksum_hash(im.format_version), stored, out, spec, shape);
      GPTQD_INPUT_CHECK(diff.empty(), "{}: {}; the checkpoint is damaged", where, diff);
    }
    check_layer_data(out, spec.bits, static_cast<int64_t>(groups), static_cast<int64_t>(rows),
                     static_cast<int64_t>(cols), where);
    return out;
  });
}

bool Checkpoint::has_weights_digests() const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  return impl_->has_weights_digests;
}

std::vector<uint64_t> Checkpoint::weights_digests() const {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_open();
  if (!im.has_weights_digests) return {};
  return ckpt::as_damage(im.path, [&] {
    const hsize_t n = static_cast<hsize_t>(im.layout.n_blocks) + 1;
    Hid d = im.dataset(ckpt::kWeightsDigest, {n});
    std::vector<uint64_t> out(n);
    h5::read_slab(d.get(), H5T_NATIVE_UINT64, {}, {}, out.data(), im.xfer());
    return out;
  });
}

void Checkpoint::write_weights_digest(int64_t index, uint64_t digest) {
  GPTQD_CHECK(impl_, "use of a moved-from Checkpoint");
  const Impl& im = *impl_;
  im.check_writable();
  GPTQD_CHECK(im.has_weights_digests, "checkpoint {} has no {} dataset", im.path,
              ckpt::kWeightsDigest);
  GPTQD_CHECK(index >= 0 && index <= im.layout.n_blocks, "weights digest {} of a {}-block layout",
              index, im.layout.n_blocks);
  const hsize_t n = static_cast<hsize_t>(im.layout.n_blocks) + 1;
  Hid d = im.dataset(ckpt::kWeightsDigest, {n});
  try {
    h5::write_slab(d.get(), H5T_NATIVE_UINT64, {static_cast<hsize_t>(index)}, {1}, &digest,
                   im.xfer());
  } catch (const h5::WriteFailure& e) {
    throw Error(fmt::format(
        "checkpoint {}: cannot write the weights digest of {}: {}", im.path,
        index == im.layout.n_blocks ? std::string("the embedding") : fmt::format("block {}", index),
        e.reason()));
  }
}

std::vector<float> Checkpoint::dequantize(const std::string& run, int64_t block,
                                          const std::string& layer) const {
  const LayerData d = read_layer(run, block, layer);
  const CkptLayerShape& shape = impl_->layout.layers[impl_->layer(layer)];
  const int64_t rows = shape.rows, cols = shape.cols;
  const int64_t groups = impl_->layout.runs[impl_->run(run)].groups(cols);
  for (int64_t c = 0; c < cols; ++c)
    GPTQD_INPUT_CHECK(d.g_idx[c] >= 0 && d.g_idx[c] < groups,
                      "checkpoint {}: {}/g_idx[{}] = {} is outside [0, {})", impl_->path,
                      ckpt::layer_path(run, block, layer), c, d.g_idx[c], groups);
  std::vector<float> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t g = d.g_idx[c];
      const float scale = d.scales[g * rows + r], zero = d.zeros[g * rows + r];
      w[r * cols + c] = scale * (static_cast<float>(d.codes[r * cols + c]) - zero);
    }
  return w;
}

bool Checkpoint::discard_if_nothing_complete() noexcept {
  if (!impl_ || !impl_->writable || !impl_->file.valid() || impl_->sync_fd < 0) return false;
  const Impl& im = *impl_;
  if (!flock_retry(im.sync_fd, LOCK_EX)) return false;
  bool removed = false;
  try {
    bool any = false;
    for (const CkptRunSpec& r : im.layout.runs) {
      const std::vector<uint8_t> done = completion(r.name);
      any = any || std::any_of(done.begin(), done.end(), [](uint8_t v) { return v != 0; });
    }
    struct stat open_st {
    }, path_st{};
    if (!any && ::fstat(im.sync_fd, &open_st) == 0 && ::lstat(im.path.c_str(), &path_st) == 0 &&
        open_st.st_dev == path_st.st_dev && open_st.st_ino == path_st.st_ino)
      removed = ::unlink(im.path.c_str()) == 0;
  } catch (const std::exception&) {
    removed = false;  // a map that cannot be read: keep the file
  }
  flock_retry(im.sync_fd, LOCK_UN);
  return removed;
}

void Checkpoint::close() {
  if (!impl_ || !impl_->file.valid()) return;
  Impl& im = *impl_;
  if (im.sync_fd >= 0) {
    // Data written since the last mark is not vouched for, but there is no reason to lose it.
    const int fd = im.sync_fd;
    im.sync_fd = -1;
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0)
      GPTQD_LOG_WARN("checkpoint {}: fsync at close failed: {}", im.path, std::strerror(err));
  }
  im.dxpl.reset();
  try {
    im.file.close_checked("H5Fclose");
  } catch (const h5::WriteFailure& e) {
    throw Error(fmt::format("checkpoint {}: closing it failed: {}", im.path, e.reason()));
  }
}

}  // namespace gptqd
