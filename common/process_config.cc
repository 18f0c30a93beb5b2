#include "common/process_config.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "yaml-cpp/yaml.h"

extern char** environ;

namespace vstream {

std::string ProcessConfig::Get(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? "" : it->second;
}

absl::StatusOr<int> ProcessConfig::GetInt(const std::string& key, int default_value) const {
  std::string v = Get(key);
  if (v.empty()) return default_value;
  int out;
  if (!absl::SimpleAtoi(v, &out)) {
    return absl::InvalidArgumentError(absl::StrCat(key, ": expected a whole number, got '", v, "'"));
  }
  return out;
}

absl::StatusOr<std::string> ProcessConfig::GetChoice(const std::string& key, const std::string& first,
                                                     const std::string& second) const {
  if (!Has(key)) return first;
  std::string v = Get(key);
  if (v != first && v != second) {
    return absl::InvalidArgumentError(absl::StrCat("--", key, ": expected ", first, " or ", second, ", got '", v, "'"));
  }
  return v;
}

absl::StatusOr<ProcessConfig> LoadProcessConfig(const ParsedFlags& flags, const std::string& process) {
  ProcessConfig config;
  if (auto file = flags.Get("config")) {
    try {
      YAML::Node root = YAML::LoadFile(*file);
      if (!root.IsMap()) {
        return absl::InvalidArgumentError(absl::StrCat(*file, ":1:1: expected a map of settings"));
      }
      for (const auto& kv : root) {
        if (!kv.second.IsScalar()) {
          return absl::InvalidArgumentError(absl::StrCat(*file, ":", kv.second.Mark().line + 1, ":",
                                                         kv.second.Mark().column + 1,
                                                         ": expected a single value"));
        }
        config.Set(kv.first.as<std::string>(), kv.second.as<std::string>());
      }
    } catch (const YAML::BadFile&) {
      return absl::NotFoundError(absl::StrCat("config file ", *file, " cannot be read"));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(*file, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
    }
  }
  for (char** env = environ; env && *env; ++env) {
    std::string kv = *env;
    if (kv.rfind("VSTREAM_", 0) != 0) continue;
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string key = absl::StrReplaceAll(absl::AsciiStrToLower(kv.substr(8, eq - 8)), {{"_", "-"}});
    config.Set(key, kv.substr(eq + 1));
  }
  for (const auto& [k, v] : flags.values) config.Set(k, v);
  (void)process;
  return config;
}

}  // namespace vstream
