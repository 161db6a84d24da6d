// The human-readable report of `gptqd inspect`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gptqd {

// Reads the checkpoint at `path` serially (safe beside a running job) and returns the report:
// the model summary, the layers of a block, then per run its settings, its completeness
// ("blocks complete: 3/4, missing: 2") and a table (block, layer, shape, gptq_err, rtn_err, loss,
// seconds) of the complete blocks. Throws InputError like Checkpoint::open_read().
std::string inspect_checkpoint(const std::string& path);

// "2, 5-9, 12" for the sorted block numbers {2, 5, 6, 7, 8, 9, 12}; "none" when empty.
std::string format_block_list(const std::vector<int64_t>& blocks);

}  // namespace gptqd
