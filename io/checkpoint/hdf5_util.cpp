#include "io/checkpoint/hdf5_util.h"

#include <cerrno>
#include <cstring>

#include "base/check.h"

namespace gptqd::h5 {

Hid& Hid::operator=(Hid&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    closer_ = o.closer_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Hid::reset() {
  if (id_ >= 0 && closer_) closer_(id_);
  id_ = H5I_INVALID_HID;
}

void Hid::close_checked(const std::string& what) {
  if (id_ < 0) return;
  const hid_t id = id_;
  id_ = H5I_INVALID_HID;
  check_write(what, [&] { return closer_(id); });
}

hid_t Hid::release() {
  const hid_t id = id_;
  id_ = H5I_INVALID_HID;
  return id;
}

void quiet_errors() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

namespace {
herr_t collect_error(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (!err->desc || !*err->desc) return 0;
  if (!out->empty()) *out += "; ";
  *out += err->desc;
  return 0;
}
}  // namespace

std::string error_text() {
  std::string out;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect_error, &out);
  H5Eclear2(H5E_DEFAULT);
  return out.empty() ? std::string("unknown HDF5 error") : out;
}

namespace {
// The innermost message of HDF5's current error stack (the one nearest the failed system call),
// and clears the stack.
herr_t innermost_error(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (out->empty() && err->desc && *err->desc) *out = err->desc;
  return 0;
}

// The errors a write, flush or close of a file can end with: errno left by the failed call is
// trusted only when it is one of them (MPI's progress engine may leave an unrelated EAGAIN).
bool is_write_errno(int err) {
  switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EIO:
    case EFBIG:
    case EROFS:
    case ESTALE:
    case ENXIO:
    case EBADF:
    case EPERM:
    case EACCES:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}
}  // namespace

herr_t check_write(const std::string& what, const std::function<herr_t()>& write) {
  errno = 0;
  const herr_t status = write();
  const int err = errno;
  if (status >= 0) return status;
  std::string inner;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_error, &inner);
  H5Eclear2(H5E_DEFAULT);
  if (is_write_errno(err))
    throw WriteFailure(what, fmt::format("{} (errno {})", std::strerror(err), err));
  // A short write (the file system took fewer bytes than given) or an error inside MPI-IO leaves
  // no error number; HDF5's innermost message is all there is.
  throw WriteFailure(what, fmt::format("the write failed without a system error (a short write, "
                                       "or an MPI-IO error); HDF5 says '{}'",
                                       inner.empty() ? "unknown error" : inner));
}

hid_t check(hid_t id, const std::string& what) {
  if (id < 0) throw Error(fmt::format("{}: {}", what, error_text()));
  return id;
}

herr_t check(herr_t status, const std::string& what) {
  if (status < 0) throw Error(fmt::format("{}: {}", what, error_text()));
  return status;
}

Hid check(Hid id, const std::string& what) {
  if (!id.valid()) throw Error(fmt::format("{}: {}", what, error_text()));
  return id;
}

Hid make_space(const std::vector<hsize_t>& dims) {
  if (dims.empty()) return check(Hid(H5Screate(H5S_SCALAR), H5Sclose), "H5Screate");
  return check(Hid(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose),
               "H5Screate_simple");
}

Hid vlen_string_type() {
  Hid t = check(Hid(H5Tcopy(H5T_C_S1), H5Tclose), "H5Tcopy");
  check(H5Tset_size(t.get(), H5T_VARIABLE), "H5Tset_size");
  check(H5Tset_cset(t.get(), H5T_CSET_UTF8), "H5Tset_cset");
  return t;
}

Hid bool_type() {
  // What h5py writes for numpy bool, so h5py reads these attributes back as bool.
  Hid t = check(Hid(H5Tenum_create(H5T_NATIVE_INT8), H5Tclose), "H5Tenum_create");
  const int8_t no = 0, yes = 1;
  check(H5Tenum_insert(t.get(), "FALSE", &no), "H5Tenum_insert");
  check(H5Tenum_insert(t.get(), "TRUE", &yes), "H5Tenum_insert");
  return t;
}

Hid make_plist(hid_t cls) { return check(Hid(H5Pcreate(cls), H5Pclose), "H5Pcreate"); }

Hid open_group(hid_t loc, const std::string& path) {
  return check(Hid(H5Gopen2(loc, path.c_str(), H5P_DEFAULT), H5Gclose),
               fmt::format("cannot open group '{}'", path));
}

Hid open_dataset(hid_t loc, const std::string& path) {
  return check(Hid(H5Dopen2(loc, path.c_str(), H5P_DEFAULT), H5Dclose),
               fmt::format("cannot open dataset '{}'", path));
}

Hid create_group(hid_t loc, const std::string& name) {
  return check(Hid(H5Gcreate2(loc, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose),
               fmt::format("cannot create group '{}'", name));
}

std::vector<hsize_t> dataset_dims(hid_t dset) {
  Hid space = check(Hid(H5Dget_space(dset), H5Sclose), "H5Dget_space");
  const int rank = check(static_cast<herr_t>(H5Sget_simple_extent_ndims(space.get())),
                         "H5Sget_simple_extent_ndims");
  std::vector<hsize_t> dims(rank);
  if (rank > 0) H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

namespace {

// A problem with the file's contents: reported to the user, so without file:line.
template <typename... Args>
void require(bool cond, fmt::format_string<Args...> f, Args&&... args) {
  if (!cond) throw Error(fmt::format(f, std::forward<Args>(args)...));
}

void write_attr_raw(hid_t obj, const char* name, hid_t file_type, hid_t mem_type,
                    const std::vector<hsize_t>& dims, const void* buf) {
  Hid space = make_space(dims);
  Hid attr =
      check(Hid(H5Acreate2(obj, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose),
            fmt::format("cannot create attribute '{}'", name));
  check(H5Awrite(attr.get(), mem_type, buf), fmt::format("cannot write attribute '{}'", name));
}

struct AttrInfo {
  Hid attr, type;
  H5T_class_t cls = H5T_NO_CLASS;
  hssize_t npoints = 0;
};

AttrInfo open_attr(hid_t obj, const char* name) {
  require(has_attr(obj, name), "attribute '{}' is missing", name);
  AttrInfo a;
  a.attr = check(Hid(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose),
                 fmt::format("cannot open attribute '{}'", name));
  a.type = check(Hid(H5Aget_type(a.attr.get()), H5Tclose), "H5Aget_type");
  a.cls = H5Tget_class(a.type.get());
  Hid space = check(Hid(H5Aget_space(a.attr.get()), H5Sclose), "H5Aget_space");
  a.npoints = H5Sget_simple_extent_npoints(space.get());
  return a;
}

// Reads n strings (fixed or variable length) of an opened string attribute.
std::vector<std::string> read_strings(const AttrInfo& a, const char* name) {
  require(a.cls == H5T_STRING, "attribute '{}' is not a string", name);
  const size_t n = static_cast<size_t>(a.npoints);
  std::vector<std::string> out(n);
  if (H5Tis_variable_str(a.type.get()) > 0) {
    Hid mem = check(Hid(H5Tcopy(H5T_C_S1), H5Tclose), "H5Tcopy");
    check(H5Tset_size(mem.get(), H5T_VARIABLE), "H5Tset_size");
    check(H5Tset_cset(mem.get(), H5Tget_cset(a.type.get())), "H5Tset_cset");
    std::vector<char*> ptrs(n, nullptr);
    check(H5Aread(a.attr.get(), mem.get(), ptrs.data()),
          fmt::format("cannot read attribute '{}'", name));
    for (size_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    Hid space = make_space({static_cast<hsize_t>(n)});
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
  } else {
    const size_t size = H5Tget_size(a.type.get());
    std::vector<char> buf(n * size + 1, '\0');
    check(H5Aread(a.attr.get(), a.type.get(), buf.data()),
          fmt::format("cannot read attribute '{}'", name));
    for (size_t i = 0; i < n; ++i) {
      const char* s = buf.data() + i * size;
      out[i] = std::string(s, strnlen(s, size));
    }
  }
  return out;
}

}  // namespace

void write_attr(hid_t obj, const char* name, const std::string& value) {
  Hid type = vlen_string_type();
  const char* p = value.c_str();
  write_attr_raw(obj, name, type.get(), type.get(), {}, &p);
}

void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values) {
  Hid type = vlen_string_type();
  std::vector<const char*> ptrs;
  for (const auto& v : values) ptrs.push_back(v.c_str());
  write_attr_raw(obj, name, type.get(), type.get(), {static_cast<hsize_t>(values.size())},
                 ptrs.data());
}

void write_attr(hid_t obj, const char* name, int64_t value) {
  write_attr_raw(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, {}, &value);
}

void write_attr_int32(hid_t obj, const char* name, int32_t value) {
  write_attr_raw(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, {}, &value);
}

void write_attr(hid_t obj, const char* name, double value) {
  write_attr_raw(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, {}, &value);
}

void write_attr_bool(hid_t obj, const char* name, bool value) {
  Hid type = bool_type();
  const int8_t v = value ? 1 : 0;
  write_attr_raw(obj, name, type.get(), type.get(), {}, &v);
}

void write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values,
                const std::vector<hsize_t>& dims) {
  write_attr_raw(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, dims, values.data());
}

bool has_link(hid_t loc, const char* name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

bool has_attr(hid_t obj, const char* name) { return H5Aexists(obj, name) > 0; }

std::string read_attr_string(hid_t obj, const char* name) {
  AttrInfo a = open_attr(obj, name);
  require(a.npoints == 1, "attribute '{}' holds {} strings, expected one", name, a.npoints);
  return read_strings(a, name)[0];
}

std::vector<std::string> read_attr_strings(hid_t obj, const char* name) {
  AttrInfo a = open_attr(obj, name);
  return read_strings(a, name);
}

int64_t read_attr_int64(hid_t obj, const char* name) {
  AttrInfo a = open_attr(obj, name);
  require(a.cls == H5T_INTEGER && a.npoints == 1, "attribute '{}' is not one integer", name);
  int64_t v = 0;
  check(H5Aread(a.attr.get(), H5T_NATIVE_INT64, &v),
        fmt::format("cannot read attribute '{}'", name));
  return v;
}

double read_attr_double(hid_t obj, const char* name) {
  AttrInfo a = open_attr(obj, name);
  require((a.cls == H5T_FLOAT || a.cls == H5T_INTEGER) && a.npoints == 1,
          "attribute '{}' is not one number", name);
  double v = 0;
  check(H5Aread(a.attr.get(), H5T_NATIVE_DOUBLE, &v),
        fmt::format("cannot read attribute '{}'", name));
  return v;
}

bool read_attr_bool(hid_t obj, const char* name) {
  AttrInfo a = open_attr(obj, name);
  require(a.npoints == 1 && (a.cls == H5T_ENUM || a.cls == H5T_INTEGER),
          "attribute '{}' is not one boolean", name);
  if (a.cls == H5T_INTEGER) return read_attr_int64(obj, name) != 0;
  // An enum is read as its own type; its base integer is at most 8 bytes.
  Hid mem =
      check(Hid(H5Tget_native_type(a.type.get(), H5T_DIR_ASCEND), H5Tclose), "H5Tget_native_type");
  require(H5Tget_size(mem.get()) <= 8, "attribute '{}' is a too wide enum", name);
  unsigned char buf[8] = {0};
  check(H5Aread(a.attr.get(), mem.get(), buf), fmt::format("cannot read attribute '{}'", name));
  for (unsigned char b : buf)
    if (b != 0) return true;
  return false;
}

std::vector<int64_t> read_attr_int64s(hid_t obj, const char* name) {
  AttrInfo a = open_attr(obj, name);
  require(a.cls == H5T_INTEGER, "attribute '{}' is not integer", name);
  std::vector<int64_t> v(static_cast<size_t>(a.npoints));
  if (!v.empty())
    check(H5Aread(a.attr.get(), H5T_NATIVE_INT64, v.data()),
          fmt::format("cannot read attribute '{}'", name));
  return v;
}

namespace {
// File and memory dataspaces for a hyperslab (whole dataset when start is empty).
std::pair<Hid, Hid> slab_spaces(hid_t dset, const std::vector<hsize_t>& start,
                                const std::vector<hsize_t>& count) {
  Hid fspace = check(Hid(H5Dget_space(dset), H5Sclose), "H5Dget_space");
  if (start.empty()) return {std::move(fspace), Hid(H5S_ALL, nullptr)};
  check(H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(),
                            nullptr),
        "H5Sselect_hyperslab");
  return {std::move(fspace), make_space(count)};
}
}  // namespace

void write_slab(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& start,
                const std::vector<hsize_t>& count, const void* buf, hid_t dxpl) {
  auto [fspace, mspace] = slab_spaces(dset, start, count);
  check_write("H5Dwrite",
              [&] { return H5Dwrite(dset, mem_type, mspace.get(), fspace.get(), dxpl, buf); });
}

void read_slab(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& start,
               const std::vector<hsize_t>& count, void* buf, hid_t dxpl) {
  auto [fspace, mspace] = slab_spaces(dset, start, count);
  check(H5Dread(dset, mem_type, mspace.get(), fspace.get(), dxpl, buf), "H5Dread");
}

}  // namespace gptqd::h5
