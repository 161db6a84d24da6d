#include "coordinator/fingerprint.h"

#include <spdlog/fmt/fmt.h>

namespace gptqd {

Fingerprint& Fingerprint::add(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h_ ^= p[i];
    h_ *= 1099511628211ull;
  }
  return *this;
}

Fingerprint& Fingerprint::add(const std::string& s) {
  add(static_cast<int64_t>(s.size()));
  return add(s.data(), s.size());
}

std::string Fingerprint::hex() const { return fmt::format("{:016x}", h_); }

}  // namespace gptqd
