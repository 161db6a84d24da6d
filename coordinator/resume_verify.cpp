#include "coordinator/resume_verify.h"

#include <string>
#include <vector>

#include "base/check.h"
#include "base/log.h"
#include "coordinator/collective.h"

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
  // The shares come from one reading of every run's map, rank 0's, sent to all: a rank that read
  // a map after another rank had cleared a damaged block's mark in it would count one block less,
  // shift its share and skip a block that no rank then checks (4 damaged blocks over 2 ranks
  // left one for a second resume to find).
  std::vector<uint8_t> maps;
  try {
    if (rank == 0)
      for (const auto& run : layout.runs) {
        const std::vector<uint8_t> done = ckpt.completion(run.name);
        maps.insert(maps.end(), done.begin(), done.end());
      }
  } catch (const InputError& e) {
    failure = e.what();
    input_error = true;
  } catch (const std::exception& e) {
    failure = error_message(e);
  }
  int read_ok = failure.empty() ? 1 : 0;
  MPI_Bcast(&read_ok, 1, MPI_INT, 0, comm);
  if (read_ok == 1) {
    maps.resize(layout.runs.size() * static_cast<size_t>(layout.n_blocks));
    MPI_Bcast(maps.data(), static_cast<int>(maps.size()), MPI_UINT8_T, 0, comm);
  } else if (rank != 0) {
    failure = "rank 0 could not read the checkpoint's completion maps";
  }
  try {
    for (size_t ri = 0; read_ok == 1 && ri < layout.runs.size(); ++ri) {
      const auto& run = layout.runs[ri];
      const uint8_t* done = maps.data() + ri * static_cast<size_t>(layout.n_blocks);
      for (int64_t b = 0; b < layout.n_blocks; ++b) {
        if (done[b] == 0) continue;
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
