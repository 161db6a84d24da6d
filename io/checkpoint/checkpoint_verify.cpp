#include "io/checkpoint/checkpoint_verify.h"

#include "base/check.h"
#include "io/checkpoint/checkpoint.h"

namespace gptqd {

VerifyResult verify_checkpoint(const std::string& path) {
  const Checkpoint ckpt = Checkpoint::open_read(path);
  const CkptLayout& layout = ckpt.layout();
  VerifyResult r;
  r.format_version = ckpt.format_version();
  for (const auto& run : layout.runs) {
    std::vector<uint8_t> done;
    try {
      done = ckpt.completion(run.name);
    } catch (const InputError& e) {
      r.damaged.push_back({run.name, -1, e.what()});
      continue;
    }
    for (int64_t b = 0; b < layout.n_blocks; ++b) {
      if (done[static_cast<size_t>(b)] == 0) continue;
      ++r.blocks_checked;
      try {
        ckpt.verify_block(run.name, b);
        r.layers_checked += static_cast<int64_t>(block_layers(layout, b).size());
      } catch (const InputError& e) {
        r.damaged.push_back({run.name, b, e.what()});
      }
    }
  }
  return r;
}

std::string format_verify_result(const std::string& path, const VerifyResult& r) {
  std::string out;
  for (const auto& d : r.damaged)
    out += d.block < 0 ? fmt::format("run {}: {}\n", d.run, d.message)
                       : fmt::format("run {} block {}: {}\n", d.run, d.block, d.message);
  const std::string what = r.format_version >= 2
                               ? "checksums and ranges"
                               : "ranges only (format_version 1 files carry no checksums)";
  if (r.ok())
    out += fmt::format("verified {}: {} complete blocks, {} layers, {}: OK\n", path,
                       r.blocks_checked, r.layers_checked, what);
  else
    out += fmt::format(
        "DAMAGED {}: {} of {} complete blocks fail their {} check; a resumed `gptqd quantize` "
        "quantizes them again\n",
        path, r.damaged.size(), r.blocks_checked, what);
  return out;
}

}  // namespace gptqd
