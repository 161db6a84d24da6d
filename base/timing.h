// Wall-clock seconds on the steady clock, for phase timings and progress lines.
#pragma once

#include <chrono>

namespace gptqd {

using SteadyClock = std::chrono::steady_clock;

// Seconds elapsed since t0.
inline double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace gptqd
