// Small RAII and attribute helpers over the HDF5 C API. io-internal: only io/*.cpp include this
// header, so hdf5.h never reaches a header that other layers see.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "base/check.h"

namespace gptqd::h5 {

// Owns one HDF5 identifier and closes it with the matching H5?close function.
class Hid {
 public:
  using Closer = herr_t (*)(hid_t);
  Hid() = default;
  Hid(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Hid(Hid&& o) noexcept : id_(o.id_), closer_(o.closer_) { o.id_ = H5I_INVALID_HID; }
  Hid& operator=(Hid&& o) noexcept;
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  ~Hid() { reset(); }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  // Closes now. Errors are ignored (nothing useful can be done with them in cleanup).
  void reset();
  // Closes now and throws WriteFailure when HDF5 reports a failure (for file closes that flush).
  void close_checked(const std::string& what);
  // Gives up ownership without closing.
  hid_t release();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// A write that HDF5 could not do (H5Dwrite, or a flush or close that writes): reason() is one
// line for the user, the system's error when the failed call left one that a write can fail with
// ("No space left on device"), else HDF5's innermost message, never the dozen-message chain.
class WriteFailure : public Error {
 public:
  WriteFailure(const std::string& what, std::string reason)
      : Error(what + ": " + reason), reason_(std::move(reason)) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

// Calls `write` (an HDF5 call that writes; errno cleared first) and throws WriteFailure naming
// `what` when it returns a negative value.
herr_t check_write(const std::string& what, const std::function<herr_t()>& write);

// Stops HDF5 printing error stacks to stderr: callers report errors themselves via error_text().
// Idempotent; call before any HDF5 call that may fail.
void quiet_errors();

// The messages on HDF5's current error stack, outermost first, joined with "; ".
std::string error_text();

// Throw gptqd::Error("<what>: <error_text()>") when an HDF5 call returned a negative value;
// return the value otherwise.
hid_t check(hid_t id, const std::string& what);
herr_t check(herr_t status, const std::string& what);
Hid check(Hid id, const std::string& what);

// Owned handles: dataspace of these dims (scalar when empty), variable-length UTF-8 string type,
// h5py's bool type (enum int8 FALSE = 0, TRUE = 1), a property list of the given class.
Hid make_space(const std::vector<hsize_t>& dims);
Hid vlen_string_type();
Hid bool_type();
Hid make_plist(hid_t cls);

// Opens a group / dataset by absolute or relative path, throwing gptqd::Error naming the path.
Hid open_group(hid_t loc, const std::string& path);
Hid open_dataset(hid_t loc, const std::string& path);
Hid create_group(hid_t loc, const std::string& name);

// The current dimensions of a dataset.
std::vector<hsize_t> dataset_dims(hid_t dset);

// Attributes. Writers create the attribute (it must not exist yet).
void write_attr(hid_t obj, const char* name, const std::string& value);
void write_attr(hid_t obj, const char* name, const std::vector<std::string>& values);
void write_attr(hid_t obj, const char* name, int64_t value);
void write_attr_int32(hid_t obj, const char* name, int32_t value);
void write_attr(hid_t obj, const char* name, double value);
void write_attr_bool(hid_t obj, const char* name, bool value);
void write_attr(hid_t obj, const char* name, const std::vector<int64_t>& values,
                const std::vector<hsize_t>& dims);

// Whether `loc` has a link (a dataset or group) `name`.
bool has_link(hid_t loc, const char* name);

// Readers throw gptqd::Error naming the attribute when it is missing or of the wrong kind.
bool has_attr(hid_t obj, const char* name);
std::string read_attr_string(hid_t obj, const char* name);  // fixed or variable length
std::vector<std::string> read_attr_strings(hid_t obj, const char* name);
int64_t read_attr_int64(hid_t obj, const char* name);  // any integer type, one element
double read_attr_double(hid_t obj, const char* name);  // any float or integer, one element
bool read_attr_bool(hid_t obj, const char* name);      // h5py bool enum or an integer
std::vector<int64_t> read_attr_int64s(hid_t obj, const char* name);  // all elements, row-major

// Raw data of a hyperslab [start, start + count) of a dataset, with a memory buffer laid out as
// a dense array of `count`. An empty `start` means the whole dataset. write_slab throws
// WriteFailure.
void write_slab(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& start,
                const std::vector<hsize_t>& count, const void* buf, hid_t dxpl);
void read_slab(hid_t dset, hid_t mem_type, const std::vector<hsize_t>& start,
               const std::vector<hsize_t>& count, void* buf, hid_t dxpl);

}  // namespace gptqd::h5
