// libFuzzer: any bytes as a job file must parse or throw InputError, in bounded time and memory
// (yaml-cpp 0.7 loops forever on a ',' outside a flow collection; io/job/job_config.cpp guards it).
// Run (see tests/fuzz/CMakeLists.txt):
//   build-fuzz/tests/fuzz/fuzz_job_yaml -max_total_time=300 -rss_limit_mb=2048 -timeout=10 \
//       corpus-dir/ configs/
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/job/job_config.h"
#include "base/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const gptqd::JobConfig job = gptqd::parse_job_config(text, "fuzz.yaml");
    // What the checkpoint stores must read back as the same job.
    if (gptqd::parse_job_config(job.resolved_yaml(), "resolved.yaml") != job) __builtin_trap();
  } catch (const gptqd::InputError&) {
  }
  return 0;
}
