// The machine's load average for the benchmarks' reports: the first three fields of
// /proc/loadavg ("unknown" where there is none). A ratio is only as good as the machine is quiet.
#pragma once

#include <cstdio>
#include <string>

namespace gptqd::bench {

inline std::string load_average() {
  FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "unknown";
  char buf[128] = {};
  const bool ok = std::fgets(buf, sizeof buf, f) != nullptr;
  std::fclose(f);
  std::string s = ok ? buf : "unknown";
  return s.substr(0, s.find(' ', s.find(' ', s.find(' ') + 1) + 1));
}

}  // namespace gptqd::bench
