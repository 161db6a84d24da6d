#include "io/job/recorded_setting.h"

#include <yaml-cpp/yaml.h>

namespace gptqd {

std::string recorded_setting(const std::string& yaml, const std::string& section,
                             const std::string& key) {
  try {
    const YAML::Node root = YAML::Load(yaml);
    if (!root.IsMap()) return "";
    const YAML::Node s = root[section];
    if (!s || !s.IsMap()) return "";
    const YAML::Node v = s[key];
    return v && v.IsScalar() ? v.Scalar() : "";
  } catch (const YAML::Exception&) {
    return "";  // a damaged attribute reads as "not recorded"
  }
}

}  // namespace gptqd
