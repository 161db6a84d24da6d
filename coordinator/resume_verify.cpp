#include "coordinator/resume_verify.h"

#include <string>
#include <vector>

#include "coordinator/collective.h"
#include "base/check.h"
#include "base/log.h"

namespace gptqd {

int64_t verify_resumed_blocks(Checkpoint& ckpt, MPI_Comm comm) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const CkptLayout& layout = ckpt.layout();
  int64_t index = 0;
  long long damaged = 0;
  std::string failure;  // thrown after the collective below, so no rank is left waiting in it
  bool input_error = false;
  try {
    for (const auto& run : layout.runs) {
      // Every rank reads the same map, so the round-robin share is the same everywhere.
      const std::vector<uint8_t> done = ckpt.completion(run.name);
      for (int64_t b = 0; b < layout.n_blocks; ++b) {
        if (done[static_cast<size_t>(b)] == 0) continue;
        if (index++ % size != rank) continue;
        try {
          ckpt.verify_block(run.name, b);
        } catch (const InputError& e) {
          GPTQD_LOG_WARN("{}; run {} block {} will be quantized again", e.what(), run.name, b);
          ckpt.mark_incomplete(run.name, b);
          ++damaged;
        }
      }
    }
  } catch (const InputError& e) {
    failure = e.what();
    input_error = true;
  } catch (const std::exception& e) {
    failure = error_message(e);
  }
  long long total = 0;
  allreduce_polled(&damaged, &total, 1, MPI_LONG_LONG, MPI_SUM, comm);
  if (rank == 0)
    GPTQD_LOG_INFO("checkpoint verified: {} complete blocks read back, {} damaged{}", index, total,
                   ckpt.format_version() >= 2 ? "" : " (format_version 1: ranges only)");
  yielding_barrier(comm);
  if (input_error) throw InputError(failure);
  if (!failure.empty()) throw Error(failure);
  return total;
}

}  // namespace gptqd
