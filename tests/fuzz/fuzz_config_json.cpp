// libFuzzer: any bytes as a config.json must give a ModelConfig and a ModelSpec or throw
// InputError (the chain io/model/hf_model.cpp runs: parse_model_config, then ModelSpec::of), and a
// spec must list tensors whose sizes fit in int64. Run: scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/model/model_config.h"
#include "io/model/model_spec.h"
#include "base/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gptqd::ModelConfig config = gptqd::parse_model_config(text, "fuzz/config.json");
    const gptqd::ModelSpec spec = gptqd::ModelSpec::of(config);
    // The first and last block stand for all: every block has the same tensors.
    for (const int64_t b : {int64_t{0}, spec.n_layer - 1}) {
      for (const gptqd::TensorSpec& t : spec.block_tensors(b)) {
        if (t.numel() < 0) std::abort();
      }
    }
    for (int g = 0; g < spec.n_groups; ++g) spec.group_members(g);
    spec.check_seqlen(2048, "fuzz");
  } catch (const gptqd::InputError&) {
  }
  return 0;
}
