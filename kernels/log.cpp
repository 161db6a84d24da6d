#include "kernels/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace gptqd {
namespace {
int g_rank = 0;
}

void init_logging(int rank, int world) {
  g_rank = rank;
  auto logger = spdlog::stderr_color_mt("gptqd-" + std::to_string(rank));
  const int width = static_cast<int>(std::to_string(world > 0 ? world - 1 : 0).size());
  logger->set_pattern(fmt::format("[%H:%M:%S.%e] [rank {:>{}}] [%^%l%$] %v", rank, width));
  spdlog::level::level_enum level = spdlog::level::info;
  if (const char* env = std::getenv("GPTQD_LOG_LEVEL")) level = spdlog::level::from_str(env);
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

int log_rank() { return g_rank; }

}  // namespace gptqd
