// On resume, the blocks a checkpoint calls complete are read back and checked before they are
// trusted (checksums and ranges, Checkpoint::verify_block); a damaged one is quantized again.
#pragma once

#include <mpi.h>

#include <cstdint>

#include "io/checkpoint/checkpoint.h"

namespace gptqd {

// Collective over comm. The complete blocks of all runs are shared round-robin over the ranks;
// each rank verifies its share, clears the mark of a damaged block (logging the reader's line)
// and all ranks meet at a barrier, so the completion map every stage reads next is the checked
// one. Returns the number of blocks found damaged (the same on every rank).
int64_t verify_resumed_blocks(Checkpoint& ckpt, MPI_Comm comm);

}  // namespace gptqd
