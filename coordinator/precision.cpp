#include "coordinator/precision.h"

#include "base/check.h"

namespace gptqd {

Precision resolve_precision(const std::string& setting, bool on_gpu) {
  if (setting == "exact") return Precision::kExact;
  if (setting == "fast") return Precision::kFast;
  GPTQD_INPUT_CHECK(setting == "auto", "parallel.precision: unknown value '{}' (auto, exact, fast)",
                    setting);
  return on_gpu ? Precision::kFast : Precision::kExact;
}

}  // namespace gptqd
