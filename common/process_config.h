#pragma once
// Process configuration, in one place: a YAML file of `key: value` pairs
// (--config FILE), then VSTREAM_<KEY> environment variables, then flags.
// Later sources win: flags over environment over file. Keys are the flag
// names (rpc-port, data-dir, ...); the environment spells them upper case
// with underscores (VSTREAM_RPC_PORT).

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "common/flags.h"

namespace vstream {

class ProcessConfig {
 public:
  std::string Get(const std::string& key) const;
  // The value as an int, default if unset, error if not an int.
  absl::StatusOr<int> GetInt(const std::string& key, int default_value) const;
  // A setting of two choices: `first` if unset (an empty value is set), else
  // `first` or `second`; anything else is an error naming the flag and both.
  absl::StatusOr<std::string> GetChoice(const std::string& key, const std::string& first,
                                        const std::string& second) const;
  // Whether the key was given at all (an empty value counts).
  bool Has(const std::string& key) const { return values_.count(key) != 0; }
  void Set(const std::string& key, std::string value) { values_[key] = std::move(value); }

 private:
  std::map<std::string, std::string> values_;
};

// `process` names the binary in error messages.
absl::StatusOr<ProcessConfig> LoadProcessConfig(const ParsedFlags& flags, const std::string& process);

}  // namespace vstream
