// The per-layer table that `gptqd quantize` prints at the end of a job.
#pragma once

#include <string>
#include <vector>

#include "io/job/job_config.h"
#include "io/model/model_spec.h"
#include "worker/stage.h"

namespace gptqd {

// Rows of every rank, gathered on `root` (empty elsewhere), sorted by run, block, layer.
std::vector<LayerReport> gather_reports(MPI_Comm comm, int root,
                                        const std::vector<LayerReport>& mine);

// One table per run: shape, GPTQ and RTN output error, their ratio, damping, time.
std::string format_report(const JobConfig& job, const ModelSpec& spec,
                          const std::vector<LayerReport>& rows);

}  // namespace gptqd
