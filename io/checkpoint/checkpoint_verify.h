// `gptqd inspect --verify`: every complete block of every run read back and checked (checksums,
// ranges), the first step after a crash or a copy (docs/checkpoint-format.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

struct VerifyResult {
  struct Damage {
    std::string run;
    int64_t block = 0;
    std::string message;  // the reader's error line
  };
  int64_t format_version = 0;
  int64_t blocks_checked = 0;  // complete blocks read back, over all runs
  int64_t layers_checked = 0;
  std::vector<Damage> damaged;
  bool ok() const { return damaged.empty(); }
};

// Opens the checkpoint read-only (InputError when it does not open) and checks every complete
// block; damage of a block is recorded, not thrown, so one report lists all of it.
VerifyResult verify_checkpoint(const std::string& path);

// The report: one line per damaged block, then "verified: N complete blocks ... OK" or
// "DAMAGED: k of N complete blocks ...", and for format_version 1 that there was no checksum.
std::string format_verify_result(const std::string& path, const VerifyResult& r);

}  // namespace gptqd
