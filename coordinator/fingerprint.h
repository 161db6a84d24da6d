// A stable 64-bit FNV-1a digest, hex-encoded: what a checkpoint records of the
// inputs it was made from, so that a resume with other inputs is refused.
#pragma once

#include <cstdint>
#include <string>

namespace gptqd {

class Fingerprint {
 public:
  Fingerprint& add(const void* data, size_t bytes);
  Fingerprint& add(const std::string& s);
  Fingerprint& add(int64_t v) { return add(&v, sizeof v); }
  std::string hex() const;

 private:
  uint64_t h_ = 1469598103934665603ull;
};

}  // namespace gptqd
