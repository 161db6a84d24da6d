// Reading one setting back from the resolved job config a checkpoint stores (its job_config
// attribute, JobConfig::resolved_yaml()): what an earlier part of the job ran with, for a
// resume that must do the same (parallel.factorization auto, coordinator/quantize_job.cpp).
#pragma once

#include <string>

namespace gptqd {

// The scalar at section.key of `yaml` ("parallel", "factorization" -> "distributed"); empty
// when the text does not parse, or has no such scalar (a file written before the key existed).
std::string recorded_setting(const std::string& yaml, const std::string& section,
                             const std::string& key);

}  // namespace gptqd
