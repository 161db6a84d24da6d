// libFuzzer, structure-aware: a valid small checkpoint is written once by the real writer; each
// input is a list of edits made to a copy of it *through the HDF5 API* (attribute values, types
// and shapes, dataset values, datasets and groups deleted or re-created with other shapes and
// types), after which every reader (open_read and all its accessors, inspect, verify, resume)
// must work or throw InputError. Raw byte flips of the HDF5 metadata are out of scope: they crash
// libhdf5 1.10.8 itself (docs/fuzzing.md). Run: scripts/fuzz.sh.
#include <fuzzer/FuzzedDataProvider.h>
#include <hdf5.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_inspect.h"
#include "io/checkpoint/checkpoint_verify.h"
#include "io/model/model_config.h"

namespace {

namespace fs = std::filesystem;
using gptqd::Checkpoint;
using gptqd::CkptLayout;

// Bounds that keep an input cheap: re-created datasets and attributes stay small, and the
// harness's own loops stop at kMaxBlocks (a reader that loops on a huge n_blocks is a finding).
constexpr int kMaxEdits = 8;
constexpr hsize_t kMaxElements = 4096;
constexpr int64_t kMaxBlocks = 16;

struct Base {
  std::string dir, work;
  std::string bytes;                    // the valid checkpoint
  std::vector<std::string> objects;     // every group and dataset path but "/"
  std::vector<std::string> datasets;    // dataset paths
  std::vector<std::string> attr_owner;  // attr i lives on attr_owner[i] ...
  std::vector<std::string> attr_name;   // ... and is named attr_name[i]
  CkptLayout layout;
};
Base* g_base = nullptr;

CkptLayout small_layout() {
  CkptLayout l;
  l.n_blocks = 2;
  l.family = "llama";
  l.layers = {{"self_attn.q_proj", 6, 8, 0, true}, {"self_attn.o_proj", 4, 6, 1, false}};
  gptqd::CkptRunSpec a;
  a.name = "w4g4";
  a.bits = 4;
  a.group_size = 4;
  a.act_order = true;
  gptqd::CkptRunSpec b;
  b.name = "w3gall";
  b.bits = 3;
  b.group_size = -1;
  b.sym = true;
  l.runs = {a, b};
  l.model_config_json = R"({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 8,)"
                        R"( "num_attention_heads": 2, "intermediate_size": 16, "vocab_size": 32})";
  l.job_config_yaml = "model:\n  path: m\n";
  l.fingerprint = "fuzz";
  return l;
}

gptqd::LayerData layer_data(const gptqd::CkptRunSpec& run, const gptqd::CkptLayerShape& shape,
                            uint32_t seed) {
  const int64_t rows = shape.rows, cols = shape.cols, groups = run.groups(cols);
  gptqd::LayerData d;
  for (int64_t i = 0; i < rows * cols; ++i) d.codes.push_back((seed + i * 7) % (1u << run.bits));
  for (int64_t i = 0; i < groups * rows; ++i) {
    d.scales.push_back(0.01f * static_cast<float>(1 + (seed + i) % 50));
    d.zeros.push_back(static_cast<float>((seed + i) % (1u << run.bits)));
  }
  for (int64_t r = 0; r < rows; ++r) d.bias.push_back(shape.bias ? 0.5f * r : 0.f);
  for (int64_t c = 0; c < cols; ++c) {
    d.g_idx.push_back(static_cast<int32_t>(c * groups / cols));
    d.perm.push_back(static_cast<int32_t>(cols - 1 - c));
  }
  d.stats = {1.5, 0.25, 0.75, 3.0, 0.01};
  return d;
}

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) std::abort();
  std::string s;
  char buf[65536];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

herr_t collect_attr(hid_t, const char* name, const H5A_info_t*, void* op) {
  auto* owner_and_base = static_cast<std::pair<std::string, Base*>*>(op);
  owner_and_base->second->attr_owner.push_back(owner_and_base->first);
  owner_and_base->second->attr_name.push_back(name);
  return 0;
}

herr_t collect_object(hid_t obj, const char* name, const H5O_info_t* info, void* op) {
  Base* base = static_cast<Base*>(op);
  const std::string path = std::string("/") + (std::strcmp(name, ".") == 0 ? "" : name);
  if (path != "/") base->objects.push_back(path);
  if (info->type == H5O_TYPE_DATASET) base->datasets.push_back(path);
  std::pair<std::string, Base*> arg{path, base};
  const hid_t o = H5Oopen(obj, name, H5P_DEFAULT);
  H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, collect_attr, &arg);
  H5Oclose(o);
  return 0;
}

// Writes the base checkpoint with the real writer: run w4g4 complete, run w3gall with block 0
// complete and block 1 written but not marked.
void make_base(Base* base) {
  std::string tmpl = (fs::temp_directory_path() / "fuzz_checkpoint.XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  base->dir = tmpl;
  base->work = base->dir + "/work.h5";
  base->layout = small_layout();
  const std::string path = base->dir + "/base.h5";
  {
    Checkpoint ck = Checkpoint::create(path, base->layout, MPI_COMM_SELF);
    uint32_t seed = 1;
    for (const auto& run : base->layout.runs) {
      for (int64_t b = 0; b < base->layout.n_blocks; ++b) {
        for (const auto& l : base->layout.layers)
          ck.write_layer(run.name, b, l.name, 0, l.rows, layer_data(run, l, seed++));
        if (run.name == "w4g4" || b == 0) ck.mark_complete(run.name, b);
      }
    }
    ck.close();
  }
  base->bytes = read_file(path);
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) std::abort();
  H5Ovisit2(file, H5_INDEX_NAME, H5_ITER_NATIVE, collect_object, base, H5O_INFO_BASIC);
  H5Fclose(file);
  if (base->datasets.empty() || base->attr_name.empty()) std::abort();
  fs::remove(path);
}

// Variable-length UTF-8 strings, as the writer stores them.
hid_t vlen_string_type() {
  const hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

// The types a re-created attribute or dataset may get.
hid_t pick_type(FuzzedDataProvider& in) {
  static const hid_t kTypes[] = {H5T_STD_U8LE,  H5T_STD_I8LE,   H5T_STD_I32LE,  H5T_STD_U32LE,
                                 H5T_STD_I64LE, H5T_STD_U64LE,  H5T_IEEE_F32LE, H5T_IEEE_F64LE,
                                 H5T_STD_I16BE, H5T_IEEE_F64BE, H5T_STD_I64BE,  H5T_STD_U16LE};
  const size_t i = in.ConsumeIntegralInRange<size_t>(0, std::size(kTypes) + 1);
  if (i < std::size(kTypes)) return H5Tcopy(kTypes[i]);
  if (i == std::size(kTypes)) return vlen_string_type();
  const hid_t t = H5Tcopy(H5T_C_S1);  // fixed-length string
  H5Tset_size(t, in.ConsumeIntegralInRange<size_t>(1, 16));
  return t;
}

std::vector<hsize_t> pick_dims(FuzzedDataProvider& in) {
  std::vector<hsize_t> dims(in.ConsumeIntegralInRange<int>(0, 3));
  hsize_t n = 1;
  for (hsize_t& d : dims) {
    d = in.ConsumeIntegralInRange<hsize_t>(0, 24);
    n *= d;
    if (n > kMaxElements) d = 1;
  }
  return dims;
}

hsize_t npoints(hid_t space) {
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  return n < 0 ? 0 : static_cast<hsize_t>(n);
}

// Values for `n` elements of `type`: fuzz bytes (repeated to fill), or vlen strings.
struct Values {
  std::vector<uint8_t> raw;
  std::vector<std::string> strings;
  std::vector<const char*> ptrs;
};

Values make_values(FuzzedDataProvider& in, hid_t type, hsize_t n) {
  Values v;
  if (H5Tis_variable_str(type) > 0) {
    for (hsize_t i = 0; i < n; ++i) v.strings.push_back(in.ConsumeRandomLengthString(64));
    for (const auto& s : v.strings) v.ptrs.push_back(s.c_str());
    if (n == 0) v.ptrs.push_back(nullptr);
    return v;
  }
  const size_t size = H5Tget_size(type) * std::max<hsize_t>(n, 1);
  std::vector<uint8_t> seed = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(1, 16));
  if (seed.empty()) seed.push_back(0);
  v.raw.resize(size);
  for (size_t i = 0; i < size; ++i) v.raw[i] = seed[i % seed.size()];
  return v;
}

// Overwrites one element (or all) of a fixed-size attribute or dataset in place; vlen strings
// get new text.
void edit_values(FuzzedDataProvider& in, hid_t obj, bool is_attr) {
  const hid_t type = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
  const hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
  const hsize_t n = npoints(space);
  if (type >= 0 && space >= 0 && n > 0 && n <= (1u << 20)) {
    if (H5Tis_variable_str(type) > 0) {
      Values v = make_values(in, type, n);
      if (is_attr)
        H5Awrite(obj, type, v.ptrs.data());
      else
        H5Dwrite(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.ptrs.data());
    } else {
      const size_t es = H5Tget_size(type);
      std::vector<uint8_t> buf(es * n);
      const herr_t rd = is_attr ? H5Aread(obj, type, buf.data())
                                : H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
      if (rd >= 0) {
        const bool all = in.ConsumeBool();
        const hsize_t at = in.ConsumeIntegralInRange<hsize_t>(0, n - 1);
        const std::vector<uint8_t> val = in.ConsumeBytes<uint8_t>(es);
        for (hsize_t i = all ? 0 : at; i < (all ? n : at + 1); ++i)
          for (size_t b = 0; b < val.size(); ++b) buf[i * es + b] = val[b];
        if (is_attr)
          H5Awrite(obj, type, buf.data());
        else
          H5Dwrite(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
      }
    }
  }
  if (space >= 0) H5Sclose(space);
  if (type >= 0) H5Tclose(type);
}

void recreate_attr(FuzzedDataProvider& in, hid_t file, const std::string& owner,
                   const std::string& name) {
  const hid_t obj = H5Oopen(file, owner.c_str(), H5P_DEFAULT);
  if (obj < 0) return;
  H5Adelete(obj, name.c_str());
  const hid_t type = pick_type(in);
  std::vector<hsize_t> dims = pick_dims(in);
  if (dims.size() > 1) dims.resize(1);
  const hid_t space =
      dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims.data(), nullptr);
  const hid_t a = H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    const Values v = make_values(in, type, npoints(space));
    H5Awrite(a, type,
             H5Tis_variable_str(type) > 0 ? static_cast<const void*>(v.ptrs.data()) : v.raw.data());
    H5Aclose(a);
  }
  H5Sclose(space);
  H5Tclose(type);
  H5Oclose(obj);
}

void recreate_dataset(FuzzedDataProvider& in, hid_t file, const std::string& path) {
  H5Ldelete(file, path.c_str(), H5P_DEFAULT);
  const hid_t type = pick_type(in);
  const std::vector<hsize_t> dims = pick_dims(in);
  const hid_t space = dims.empty()
                          ? H5Screate(H5S_SCALAR)
                          : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t d =
      H5Dcreate2(file, path.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0) {
    const hsize_t n = npoints(space);
    if (n > 0) {
      const Values v = make_values(in, type, n);
      H5Dwrite(
          d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
          H5Tis_variable_str(type) > 0 ? static_cast<const void*>(v.ptrs.data()) : v.raw.data());
    }
    H5Dclose(d);
  }
  H5Sclose(space);
  H5Tclose(type);
}

void apply_edits(FuzzedDataProvider& in, hid_t file) {
  const Base& b = *g_base;
  for (int e = 0; e < kMaxEdits && in.remaining_bytes() > 0; ++e) {
    const int op = in.ConsumeIntegralInRange<int>(0, 5);
    const size_t ai = in.ConsumeIntegralInRange<size_t>(0, b.attr_name.size() - 1);
    const size_t di = in.ConsumeIntegralInRange<size_t>(0, b.datasets.size() - 1);
    const size_t oi = in.ConsumeIntegralInRange<size_t>(0, b.objects.size() - 1);
    switch (op) {
      case 0: {  // an attribute's value
        const hid_t a = H5Aopen_by_name(file, b.attr_owner[ai].c_str(), b.attr_name[ai].c_str(),
                                        H5P_DEFAULT, H5P_DEFAULT);
        if (a >= 0) {
          edit_values(in, a, true);
          H5Aclose(a);
        }
        break;
      }
      case 1:  // an attribute's type and shape
        recreate_attr(in, file, b.attr_owner[ai], b.attr_name[ai]);
        break;
      case 2:  // an attribute removed
        H5Adelete_by_name(file, b.attr_owner[ai].c_str(), b.attr_name[ai].c_str(), H5P_DEFAULT);
        break;
      case 3: {  // a dataset's values
        const hid_t d = H5Dopen2(file, b.datasets[di].c_str(), H5P_DEFAULT);
        if (d >= 0) {
          edit_values(in, d, false);
          H5Dclose(d);
        }
        break;
      }
      case 4:  // a dataset's type and shape
        recreate_dataset(in, file, b.datasets[di]);
        break;
      case 5:  // a group or dataset removed
        H5Ldelete(file, b.objects[oi].c_str(), H5P_DEFAULT);
        break;
    }
  }
}

// A reader may refuse with InputError or, where the file is damaged in a way it does not name
// as such, with gptqd::Error (both end in one error line and exit code 1 at the top of gptqd).
// Anything else (std::bad_alloc, a nlohmann or standard-library exception) is a finding. The
// first gptqd::Error of each reader is printed once, for the record (docs/fuzzing.md); with
// GPTQD_FUZZ_STRICT=1 in the environment a gptqd::Error that is no InputError is a finding too.
template <typename F>
void refuses_cleanly(const char* reader, F&& f) {
  static const bool strict = std::getenv("GPTQD_FUZZ_STRICT") != nullptr;
  try {
    f();
  } catch (const gptqd::InputError&) {
  } catch (const gptqd::Error& e) {
    if (strict) {
      std::fprintf(stderr, "%s: not an InputError: %s\n", reader, e.what());
      std::abort();
    }
    static std::vector<std::string> seen;
    if (std::find(seen.begin(), seen.end(), reader) == seen.end()) {
      seen.push_back(reader);
      std::fprintf(stderr, "NOTE %s refused with gptqd::Error (not InputError): %s\n", reader,
                   e.what());
    }
  }
}

// Every reader of a checkpoint, as inspect, verify, eval, export and resume use them.
void read_everything(const std::string& path) {
  refuses_cleanly("open_read", [&] {
    const Checkpoint ck = Checkpoint::open_read(path);
    const CkptLayout& l = ck.layout();
    ck.writer_version();
    refuses_cleanly("weights_digests", [&] { ck.weights_digests(); });
    refuses_cleanly("parse_model_config", [&] {
      gptqd::parse_model_config(l.model_config_json, path + ": model_config");
    });
    for (const auto& run : l.runs) {
      std::vector<uint8_t> done;
      refuses_cleanly("completion", [&] { done = ck.completion(run.name); });
      for (int64_t b = 0; b < std::min(l.n_blocks, kMaxBlocks); ++b) {
        const bool complete = static_cast<size_t>(b) < done.size() && done[b] != 0;
        if (complete) refuses_cleanly("verify_block", [&] { ck.verify_block(run.name, b); });
        for (const auto& layer : l.layers) {
          refuses_cleanly("read_stats", [&] { ck.read_stats(run.name, b, layer.name); });
          if (!complete) continue;
          refuses_cleanly("read_layer", [&] { ck.read_layer(run.name, b, layer.name); });
          refuses_cleanly("dequantize", [&] { ck.dequantize(run.name, b, layer.name); });
        }
      }
    }
  });
  refuses_cleanly("inspect_checkpoint", [&] { gptqd::inspect_checkpoint(path); });
  refuses_cleanly("verify_checkpoint", [&] { gptqd::verify_checkpoint(path); });
  refuses_cleanly("open_resume", [&] {
    Checkpoint ck = Checkpoint::open_resume(path, g_base->layout, MPI_COMM_SELF);
    ck.close();
  });
}

void remove_dir() {
  if (g_base != nullptr) fs::remove_all(g_base->dir);
}

}  // namespace

// What Open MPI and its plugins allocate in MPI_Init and keep until exit (the harness never calls
// MPI_Finalize: libFuzzer ends the process); LeakSanitizer's check at exit would report it.
// Nothing of gptqd's is suppressed here. strdup: the MPI-IO plugins (mca_io_romio321,
// mca_io_ompio) leak strdup'ed strings and are unloaded before the check, so their frames show as
// "<unknown module>"; gptqd's code never calls strdup.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libopen-pal.so\nleak:libopen-rte.so\nleak:libmpi.so\nleak:libhwloc.so\n"
         "leak:libpmix.so\nleak:/openmpi/lib/openmpi3/mca_\nleak:/pmix/lib/pmix/\n"
         "leak:__vasprintf_internal\nleak:strdup\n";
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Open MPI's own handlers would take SIGABRT/SIGSEGV from libFuzzer and the sanitizers (no
  // reproducer written): let it install none.
  setenv("OMPI_MCA_opal_signal", "", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
  MPI_Init(nullptr, nullptr);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  g_base = new Base;
  make_base(g_base);
  std::atexit(remove_dir);
  // The unedited file must read back whole: 3 complete blocks (2 of w4g4, 1 of w3gall).
  write_file(g_base->work, g_base->bytes);
  const gptqd::VerifyResult r = gptqd::verify_checkpoint(g_base->work);
  if (!r.damaged.empty() || r.blocks_checked != 3) {
    std::fprintf(stderr, "fuzz_checkpoint: the base checkpoint does not verify\n");
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  write_file(g_base->work, g_base->bytes);
  {
    const hid_t file = H5Fopen(g_base->work.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    if (file < 0) std::abort();
    FuzzedDataProvider in(data, size);
    apply_edits(in, file);
    if (H5Fclose(file) < 0) std::abort();
  }
  read_everything(g_base->work);
  return 0;
}
