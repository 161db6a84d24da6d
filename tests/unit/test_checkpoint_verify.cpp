// The checkpoint verifies what it reads (format_version 2 and 3): the checksums are libxxhash's
// XXH3_64bits (format 3) and XXH64 (format 2; Hash64), checked against python xxhash's values and
// the documented byte recipe (the fixture of scripts/make_checksum_vectors.py); a format 2 file
// written by the hand-written XXH64 gptqd had before still verifies and resumes
// (tests/fixtures/checkpoint/format2.h5); row checksums written by several writers equal those of
// the whole layer, damage inside every range is found by read_layer and verify_block, a damaged
// dataset or attribute is InputError, format 1 files still read (but not a newer file whose
// format_version was lowered), a resumed block can be marked incomplete, and a 4096-run sweep's
// checkpoint can be created.
#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"
#include "io/checkpoint/checkpoint_checksum.h"
#include "io/checkpoint/checkpoint_verify.h"
#include "tests/checkpoint_fixture.h"

namespace gptqd {
namespace {

using ckpt::Hash64;

// Values of the reference xxHash64 (seed 0), from PyPI's xxhash 3.x:
//   python3 -c "import xxhash; print(hex(xxhash.xxh64(bytes(range(100))).intdigest()))"
TEST(CheckpointChecksum, IsXxHash64) {
  std::vector<unsigned char> bytes(100);
  for (int i = 0; i < 100; ++i) bytes[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(Hash64().digest(), 0xef46db3751d8e999ULL);
  EXPECT_EQ(Hash64().bytes("abc", 3).digest(), 0x44bc2cf5ad770999ULL);
  EXPECT_EQ(Hash64().bytes(bytes.data(), 37).digest(), 0xd93fa2dfee5c24c9ULL);
  EXPECT_EQ(Hash64().bytes(bytes.data(), 100).digest(), 0x6ac1e58032166597ULL);
  // Fed in pieces of every size: the same value.
  for (size_t piece = 1; piece <= 40; ++piece) {
    Hash64 h;
    for (size_t i = 0; i < 100; i += piece) h.bytes(bytes.data() + i, std::min(piece, 100 - i));
    EXPECT_EQ(h.digest(), 0x6ac1e58032166597ULL) << piece;
  }
  // Control: one bit changed changes the value.
  bytes[50] ^= 1;
  EXPECT_NE(Hash64().bytes(bytes.data(), 100).digest(), 0x6ac1e58032166597ULL);
}

// Known answers from python xxhash and from the byte recipe of docs/checkpoint-format.md,
// computed outside gptqd (scripts/make_checksum_vectors.py says how to regenerate them): XXH64
// (Hash64, format 2) and XXH3_64bits (format 3) of test data, and the row and meta checksums of
// a synthetic layer under each.
TEST(CheckpointChecksum, MatchesPythonXxhashAndTheDocumentedBytes) {
  const std::string path = GPTQD_SOURCE_DIR "/tests/fixtures/checkpoint/checksum_vectors.txt";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::vector<unsigned char> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>((i * 31 + 7) & 255);

  // The synthetic layer of the script's docstring: rows 10..15 of 16, 40 columns, 3 groups.
  const int64_t cols = 40, groups = 3, row_begin = 10, nr = 6;
  LayerData d;
  for (int64_t r = 0; r < nr; ++r)
    for (int64_t c = 0; c < cols; ++c)
      d.codes.push_back(static_cast<uint8_t>((r * 40 + c * 7) % 16));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t r = 0; r < nr; ++r) {
      d.scales.push_back(0.25f + 0.5f * g + r / 16.f);
      d.zeros.push_back(static_cast<float>((g * 5 + r) % 16));
    }
  for (int64_t r = 0; r < nr; ++r) d.bias.push_back(0.75f * r - 2);
  for (int32_t c = 0; c < cols; ++c) {
    d.g_idx.push_back(c / 16);
    d.perm.push_back(static_cast<int32_t>(cols) - 1 - c);
  }
  d.stats = {0.5, 0.25, 0.125, 3.0, 0.01};
  CkptRunSpec run;
  run.name = "w4g16";
  run.bits = 4;
  run.group_size = 16;
  run.sym = false;
  run.act_order = true;
  run.static_groups = false;
  run.true_sequential = true;
  run.damp_percent = 0.01;
  run.block_size = 128;
  run.mse_clip = false;
  CkptLayerShape shape;
  shape.name = "mlp.dense_4h_to_h";
  shape.rows = 16;
  shape.cols = cols;
  shape.bias = true;
  const auto hash_named = [](const std::string& name) {
    if (name == "xxh64") return ckpt::ChecksumHash::kXxh64;
    EXPECT_EQ(name, "xxh3");
    return ckpt::ChecksumHash::kXxh3;
  };

  int n_xxh64 = 0, n_xxh3 = 0, n_row = 0, n_meta = 0;
  for (std::string line; std::getline(in, line);) {
    std::istringstream ls(line);
    std::string kind, hex;
    ls >> kind;
    if (kind == "xxh64") {
      uint64_t seed = 0;
      size_t n = 0;
      ls >> seed >> n >> hex;
      uint64_t want = std::stoull(hex, nullptr, 16);
      want = want == 0 ? 1 : want;
      EXPECT_EQ(Hash64(seed).bytes(data.data(), n).digest(), want) << line;
      if (seed == 0) {
        EXPECT_EQ(ckpt::checksum_of(ckpt::ChecksumHash::kXxh64, data.data(), n), want) << line;
      }
      // Fed in pieces of 1, 3 and 13 bytes, and after a reset: the same value.
      for (size_t piece : {1, 3, 13}) {
        Hash64 h(seed ^ 1);
        h.bytes("x", 1).reset(seed);
        for (size_t i = 0; i < n; i += piece) h.bytes(data.data() + i, std::min(piece, n - i));
        EXPECT_EQ(h.digest(), want) << line << " in pieces of " << piece;
      }
      ++n_xxh64;
    } else if (kind == "xxh3") {
      size_t n = 0;
      ls >> n >> hex;
      uint64_t want = std::stoull(hex, nullptr, 16);
      want = want == 0 ? 1 : want;
      EXPECT_EQ(ckpt::checksum_of(ckpt::ChecksumHash::kXxh3, data.data(), n), want) << line;
      ++n_xxh3;
    } else if (kind == "row") {
      std::string name;
      int64_t r = 0;
      ls >> name >> r >> hex;
      ASSERT_TRUE(r >= row_begin && r < row_begin + nr) << line;
      EXPECT_EQ(
          ckpt::row_checksums(hash_named(name), d, row_begin, nr, cols, groups)[r - row_begin],
          std::stoull(hex, nullptr, 16))
          << line;
      ++n_row;
    } else if (kind == "meta") {
      std::string name;
      ls >> name >> hex;
      EXPECT_EQ(ckpt::meta_checksum(hash_named(name), d, run, shape), std::stoull(hex, nullptr, 16))
          << line;
      ++n_meta;
    } else {
      ADD_FAILURE() << "unknown line in " << path << ": " << line;
    }
  }
  EXPECT_EQ(n_xxh64, 40);
  EXPECT_EQ(n_xxh3, 20);
  EXPECT_EQ(n_row, 12);
  EXPECT_EQ(n_meta, 2);
  // Control: the two hashes differ, so each line above checked the one it names.
  EXPECT_NE(ckpt::row_checksums(ckpt::ChecksumHash::kXxh64, d, row_begin, nr, cols, groups),
            ckpt::row_checksums(ckpt::ChecksumHash::kXxh3, d, row_begin, nr, cols, groups));
  EXPECT_EQ(ckpt::checksum_hash(2), ckpt::ChecksumHash::kXxh64);
  EXPECT_EQ(ckpt::checksum_hash(3), ckpt::ChecksumHash::kXxh3);
  EXPECT_EQ(ckpt::checksum_hash(kCheckpointFormatVersion), ckpt::ChecksumHash::kXxh3);
}

TEST(CheckpointChecksum, RowsOfSeveralWritersEqualTheWholeLayer) {
  for (const ckpt::ChecksumHash hash : {ckpt::ChecksumHash::kXxh64, ckpt::ChecksumHash::kXxh3}) {
    SCOPED_TRACE(ckpt::checksum_hash_name(hash));
    const CkptLayout l = small_layout();
    const CkptLayerShape& shape = l.layers[0];
    const int64_t rows = shape.rows, cols = shape.cols, groups = l.runs[0].groups(cols);
    const LayerData full = random_layer(l, 0, 0, 0, rows, 5);
    const std::vector<uint64_t> whole = ckpt::row_checksums(hash, full, 0, rows, cols, groups);
    std::vector<uint64_t> pieces;
    for (const auto& [rb, re] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {5, 6}, {6, 12}}) {
      const auto p = ckpt::row_checksums(hash, rows_of(full, rows, cols, groups, rb, re), rb,
                                         re - rb, cols, groups);
      pieces.insert(pieces.end(), p.begin(), p.end());
    }
    EXPECT_EQ(pieces, whole);
    std::vector<uint64_t> stored = whole;
    stored.push_back(ckpt::meta_checksum(hash, full, l.runs[0], shape));
    EXPECT_EQ(ckpt::checksum_mismatch(hash, stored, full, l.runs[0], shape), "");
    // Two rows swapped (codes, scales, zeros and bias together): row 0 no longer matches.
    LayerData swapped = full;
    for (int64_t c = 0; c < cols; ++c) std::swap(swapped.codes[c], swapped.codes[cols + c]);
    for (int64_t g = 0; g < groups; ++g) {
      std::swap(swapped.scales[g * rows], swapped.scales[g * rows + 1]);
      std::swap(swapped.zeros[g * rows], swapped.zeros[g * rows + 1]);
    }
    std::swap(swapped.bias[0], swapped.bias[1]);
    EXPECT_EQ(ckpt::checksum_mismatch(hash, stored, swapped, l.runs[0], shape),
              "row 0's checksum does not match its codes, scales, zeros and bias");
    // Another run's settings (bits 4 -> 3) with the same data: the meta checksum differs.
    CkptRunSpec other = l.runs[0];
    other.bits = 3;
    EXPECT_NE(ckpt::checksum_mismatch(hash, stored, full, other, shape).find("run's settings"),
              std::string::npos);
  }
}

// A checkpoint with run w4g4 block 1 complete (written in three row ranges) and run w3gall
// block 0 written but not marked.
void write_sample(const std::string& path, const CkptLayout& l) {
  Checkpoint ck = Checkpoint::create(path, l, MPI_COMM_SELF);
  for (size_t li = 0; li < l.layers.size(); ++li) {
    const CkptLayerShape& s = l.layers[li];
    const int64_t groups = l.runs[0].groups(s.cols);
    const LayerData full = random_layer(l, 0, static_cast<int>(li), 0, s.rows, 40 + li);
    const int64_t mid = s.rows / 2;
    ck.write_layer("w4g4", 1, s.name, mid, s.rows,
                   rows_of(full, s.rows, s.cols, groups, mid, s.rows));
    ck.write_layer("w4g4", 1, s.name, 0, mid, rows_of(full, s.rows, s.cols, groups, 0, mid));
    ck.write_layer("w3gall", 0, s.name, 0, s.rows,
                   random_layer(l, 1, static_cast<int>(li), 0, s.rows, 60 + li));
  }
  ck.mark_complete("w4g4", 1);
  ck.close();
}

// Runs python with h5py on the file (the test is skipped without it).
void h5py_edit(const std::string& path, const std::string& code) {
  const std::string cmd = "/usr/bin/python3 -c \"import h5py\nwith h5py.File('" + path +
                          "', 'r+') as f:\n    " + code + "\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST_F(CheckpointFile, VerifyFindsDamageWithinRange) {
  if (!has_h5py()) GTEST_SKIP() << "no /usr/bin/python3 with h5py to damage a checkpoint";
  const CkptLayout l = small_layout();
  write_sample(path_, l);
  VerifyResult r = verify_checkpoint(path_);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.format_version, 3);
  EXPECT_EQ(r.blocks_checked, 1);
  EXPECT_EQ(r.layers_checked, 2);
  EXPECT_NE(format_verify_result(path_, r).find(": 1 complete blocks, 2 layers, checksums and "
                                                "ranges: OK"),
            std::string::npos);

  // A code moved to another 4-bit value of the same row: every range still holds.
  h5py_edit(
      path_,
      "d = f['runs/w4g4/blocks/1/self_attention.dense/codes']; d[2, 3] = (int(d[2, 3]) + 1) % 16");
  std::string msg = input_error_of(
      [&] { Checkpoint::open_read(path_).read_layer("w4g4", 1, "self_attention.dense"); });
  EXPECT_NE(msg.find("run w4g4 block 1 self_attention.dense: row 2's checksum does not match"),
            std::string::npos)
      << msg;
  EXPECT_NE(input_error_of([&] {
              Checkpoint::open_read(path_).verify_block("w4g4", 1);
            }).find("row 2's checksum"),
            std::string::npos);
  r = verify_checkpoint(path_);
  ASSERT_EQ(r.damaged.size(), 1u);
  EXPECT_EQ(r.damaged[0].run, "w4g4");
  EXPECT_EQ(r.damaged[0].block, 1);
  EXPECT_NE(format_verify_result(path_, r).find("DAMAGED " + path_ + ": 1 of 1 complete blocks"),
            std::string::npos);
  // The block not marked complete is read as stored, unchecked (a resume overwrites it).
  EXPECT_NO_THROW(Checkpoint::open_read(path_).read_layer("w3gall", 0, "self_attention.dense"));

  // format_version lowered to 1 while the checksums are still there: refused, not read without
  // them (that turned checking off).
  h5py_edit(path_, "f.attrs['format_version'] = 1");
  msg = input_error_of([&] { Checkpoint::open_read(path_); });
  EXPECT_NE(msg.find("checkpoint " + path_ +
                     " has format_version 1 but holds checksum datasets (first: "
                     "/runs/w4g4/blocks/0/self_attention.query_key_value/checksum)"),
            std::string::npos)
      << msg;
  EXPECT_NE(input_error_of([&] { verify_checkpoint(path_); }).find("has format_version 1 but"),
            std::string::npos);
  // Every checksum dataset but one deleted: still refused.
  const std::string checksums =
      "n = []; f.visit(lambda k: n.append(k) if k.endswith('/checksum') else None); ";
  h5py_edit(path_, checksums + "[f.__delitem__(k) for k in n[:-1]]");
  EXPECT_NE(input_error_of([&] {
              Checkpoint::open_read(path_);
            }).find("has format_version 1 but holds checksum datasets"),
            std::string::npos);

  // Control: as a true format 1 file (no checksum datasets) the same damage passes every range
  // check, so the refusals above come from the checksums alone.
  h5py_edit(path_, checksums + "[f.__delitem__(k) for k in n]");
  r = verify_checkpoint(path_);
  EXPECT_TRUE(r.ok());
  EXPECT_NE(format_verify_result(path_, r).find("ranges only"), std::string::npos);
}

// A format_version 2 file written by the hand-written XXH64 gptqd had before it linked libxxhash
// (the fixture of scripts/make_format2_fixture.sh, made by db53eaa's gptqd): it still verifies
// (libxxhash's XXH64 gives the old values), a resume writes XXH64 checksums into it and it stays
// format 2, and damage in it is still found. Control: read as format 3 (XXH3) it is damaged
// everywhere, so the pass was the version's hash at work.
TEST_F(CheckpointFile, Format2FileFromTheHandWrittenHashVerifiesAndResumes) {
  std::filesystem::copy_file(GPTQD_SOURCE_DIR "/tests/fixtures/checkpoint/format2.h5", path_);
  VerifyResult r = verify_checkpoint(path_);
  EXPECT_TRUE(r.ok()) << format_verify_result(path_, r);
  EXPECT_EQ(r.format_version, 2);
  EXPECT_EQ(r.blocks_checked, 4);  // two runs of two blocks
  EXPECT_EQ(r.layers_checked, 16);
  const std::string run = "w4g16-act", layer = "mlp.dense_4h_to_h";
  const LayerData before = Checkpoint::open_read(path_).read_layer(run, 1, layer);

  // Resumed: block 1 rewritten in two row ranges by this gptqd.
  {
    const CkptLayout l = Checkpoint::open_read(path_).layout();
    Checkpoint ck = Checkpoint::open_resume(path_, l, MPI_COMM_SELF);
    EXPECT_EQ(ck.format_version(), 2);
    ck.mark_incomplete(run, 1);
    const CkptLayerShape& shape = *std::find_if(l.layers.begin(), l.layers.end(),
                                                [&](const auto& s) { return s.name == layer; });
    const int64_t groups = l.runs[1].groups(shape.cols), mid = shape.rows / 3;
    ASSERT_EQ(l.runs[1].name, run);
    ck.write_layer(run, 1, layer, mid, shape.rows,
                   rows_of(before, shape.rows, shape.cols, groups, mid, shape.rows));
    ck.write_layer(run, 1, layer, 0, mid, rows_of(before, shape.rows, shape.cols, groups, 0, mid));
    ck.mark_complete(run, 1);
    ck.close();
  }
  r = verify_checkpoint(path_);
  EXPECT_TRUE(r.ok()) << format_verify_result(path_, r);
  EXPECT_EQ(r.format_version, 2);

  if (!has_h5py()) GTEST_SKIP() << "no /usr/bin/python3 with h5py to damage a checkpoint";
  // Control: one code moved to another 4-bit value is found, so the passes above checked.
  const std::string copy = path_ + ".orig";
  std::filesystem::copy_file(path_, copy);
  h5py_edit(path_,
            "d = f['runs/w4g16-act/blocks/1/mlp.dense_4h_to_h/codes']; d[5, 9] = (int(d[5, 9]) + "
            "1) % 16");
  r = verify_checkpoint(path_);
  ASSERT_EQ(r.damaged.size(), 1u) << format_verify_result(path_, r);
  EXPECT_NE(r.damaged[0].message.find("mlp.dense_4h_to_h: row 5's checksum does not match"),
            std::string::npos)
      << r.damaged[0].message;
  // Control: the undamaged file with its format_version raised to 3 (XXH3): every block fails.
  std::filesystem::copy_file(copy, path_, std::filesystem::copy_options::overwrite_existing);
  h5py_edit(path_, "f.attrs['format_version'] = 3");
  r = verify_checkpoint(path_);
  EXPECT_EQ(r.damaged.size(), 4u) << format_verify_result(path_, r);
}

TEST_F(CheckpointFile, DamagedDatasetsAndAttributesAreInputErrors) {
  if (!has_h5py()) GTEST_SKIP() << "no /usr/bin/python3 with h5py to damage a checkpoint";
  const CkptLayout l = small_layout();
  write_sample(path_, l);
  // The checksum dataset deleted: the reader says the file is damaged (was a bare HDF5 error).
  h5py_edit(path_, "del f['runs/w4g4/blocks/1/self_attention.dense/checksum']");
  std::string msg = input_error_of(
      [&] { Checkpoint::open_read(path_).read_layer("w4g4", 1, "self_attention.dense"); });
  EXPECT_NE(msg.find("checkpoint " + path_ + " is damaged"), std::string::npos) << msg;
  // n_blocks beyond any model: refused when the layout is read, before anything is sized by it.
  write_sample(path_, l);
  h5py_edit(path_, "f.attrs['n_blocks'] = 2**50");
  msg = input_error_of([&] { Checkpoint::open_read(path_); });
  EXPECT_NE(msg.find("is damaged: checkpoint layout: n_blocks is 1125899906842624"),
            std::string::npos)
      << msg;
  // A layer's rows made huge: refused likewise (was a 2^50-element allocation in read_layer).
  write_sample(path_, l);
  h5py_edit(path_, "s = f.attrs['layer_shapes']; s[0, 0] = 2**50; f.attrs['layer_shapes'] = s");
  msg = input_error_of([&] { Checkpoint::open_read(path_); });
  EXPECT_NE(msg.find("has shape 1125899906842624x8"), std::string::npos) << msg;
  // A dataset of another shape than the layout says: named, before any allocation.
  write_sample(path_, l);
  h5py_edit(path_, "del f['runs/w4g4/complete']; f['runs/w4g4/complete'] = [1] * 5");
  msg = input_error_of([&] { Checkpoint::open_read(path_).completion("w4g4"); });
  EXPECT_NE(msg.find("dataset /runs/w4g4/complete does not have the layout's shape"),
            std::string::npos)
      << msg;
}

TEST_F(CheckpointFile, MarkIncompleteClearsOneBlock) {
  const CkptLayout l = small_layout();
  write_sample(path_, l);
  {
    Checkpoint ck = Checkpoint::open_resume(path_, l, MPI_COMM_SELF);
    ck.mark_complete("w4g4", 2);
    EXPECT_EQ(ck.completion("w4g4"), (std::vector<uint8_t>{0, 1, 1}));
    ck.mark_incomplete("w4g4", 1);
    ck.close();
  }
  EXPECT_EQ(Checkpoint::open_read(path_).completion("w4g4"), (std::vector<uint8_t>{0, 0, 1}));
}

// The documented maximum sweep: 4096 runs (the root attribute listing them is larger than an
// HDF5 object header message; dense attribute storage holds it).
TEST_F(CheckpointFile, HoldsA4096RunSweep) {
  CkptLayout l;
  l.n_blocks = 1;
  l.layers = {{"dense", 2, 4}};
  l.model_config_json = "{}";
  l.fingerprint = "fp";
  for (int i = 0; i < 4096; ++i) {
    CkptRunSpec r;
    r.name = "w4g" + std::to_string(i) + "-damp0.0100-act-static-sym";
    r.group_size = 1 + i % 4;
    l.runs.push_back(r);
  }
  { Checkpoint ck = Checkpoint::create(path_, l, MPI_COMM_SELF); }
  EXPECT_FALSE(std::filesystem::exists(path_ + ".creating"));
  const Checkpoint rd = Checkpoint::open_read(path_);
  EXPECT_EQ(rd.layout().runs.size(), 4096u);
  EXPECT_EQ(rd.layout().runs.back().name, l.runs.back().name);
}

}  // namespace
}  // namespace gptqd
