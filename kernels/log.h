// The one logging header. Library code logs through these functions and never
// creates sinks; init_logging() (called once per process by the CLI or a test
// main) installs the sink whose pattern carries the rank.
#pragma once

#include <spdlog/spdlog.h>

namespace gptqd {

// Installs a stderr logger whose every line reads "[rank R] ...". Level from
// GPTQD_LOG_LEVEL (trace|debug|info|warn|error|off), default info on every rank:
// each pipeline stage reports its own progress. Job-wide lines come from rank 0.
void init_logging(int rank, int world);

// The rank init_logging() was given (0 before it is called).
int log_rank();

}  // namespace gptqd

#define GPTQD_LOG_INFO(...) spdlog::info(__VA_ARGS__)
#define GPTQD_LOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define GPTQD_LOG_ERROR(...) spdlog::error(__VA_ARGS__)
#define GPTQD_LOG_DEBUG(...) spdlog::debug(__VA_ARGS__)
